"""One ``Answer``, three channels: Slack Block Kit (slack_sdk models), Mattermost markdown, JSON.

Each renderer prints the same title and lines, so the same question gets the same facts on
every channel; only the decoration differs (Slack buttons, Mattermost code-free markdown).
"""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from api.chat.commands import Answer

__all__ = ["mattermost_response", "slack_blocks", "slack_escape", "slack_response"]

_SECTION_MAX = 2900  # Slack caps a section's text at 3000 characters


def slack_escape(text: str) -> str:
    """Escape Slack's three control characters so user text cannot ping or link.

    >>> slack_escape("<!channel> & co")
    '&lt;!channel&gt; &amp; co'
    """
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _chunks(lines: list[str]) -> list[str]:
    out, current = [], ""
    for line in lines:
        if current and len(current) + len(line) + 1 > _SECTION_MAX:
            out.append(current)
            current = ""
        current = f"{current}\n{line}" if current else line[:_SECTION_MAX]
    return [*out, current] if current else out


def slack_blocks(answer: Answer) -> list[Block]:
    """The answer as Block Kit blocks: the title, the lines, buttons, and the usage on an error."""
    mark = "" if answer.ok else ":warning: "
    blocks: list[Block] = [
        SectionBlock(text=MarkdownTextObject(text=f"{mark}*{slack_escape(answer.title)}*"))
    ]
    blocks += [
        SectionBlock(text=MarkdownTextObject(text=c))
        for c in _chunks([slack_escape(x) for x in answer.lines])
    ]
    if answer.buttons:
        elements = [
            ButtonElement(
                text=PlainTextObject(text=b.label[:75]),
                action_id=f"{b.command}:{b.value}"[:255],
                value=b.value[:2000],
                style="primary" if b.command == "ack" else None,
            )
            for b in answer.buttons[:25]
        ]
        blocks.append(ActionsBlock(elements=elements))
    if answer.usage:
        usage = MarkdownTextObject(text=f"usage: `{slack_escape(answer.usage)}`")
        blocks.append(ContextBlock(elements=[usage]))
    return blocks


def slack_response(answer: Answer, *, in_channel: bool = False) -> dict[str, Any]:
    """A slash command / ``response_url`` message: ``text`` (notifications) plus ``blocks``."""
    return {
        "response_type": "in_channel" if in_channel and answer.ok else "ephemeral",
        "text": answer.title,
        "blocks": [b.to_dict() for b in slack_blocks(answer)],
    }


def mattermost_response(answer: Answer, *, in_channel: bool = False) -> dict[str, Any]:
    """A Mattermost slash command response: markdown text with the same lines."""
    lines = [f"{'' if answer.ok else ':warning: '}**{answer.title}**", *answer.lines]
    if answer.buttons:
        lines.append("next: " + ", ".join(f"`{b.command} {b.value}`" for b in answer.buttons))
    if answer.usage:
        lines.append(f"usage: `{answer.usage}`")
    return {
        "response_type": "in_channel" if in_channel and answer.ok else "ephemeral",
        "text": "\n".join(lines),
    }
