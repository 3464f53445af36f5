"""Schema migrations of this stage: ``NNNN_name.sql`` files that ``core.store`` applies in version order."""
