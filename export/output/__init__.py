"""What an export leaves in its --out folder: artifacts staged and published all or nothing
(staging, publish), export-report.json/.md (report, report_sections) and the INT8 galleries
(gallery)."""
