"""Reports: the cohort report and the case report as pages, PDF and self-contained HTML; the public outcomes pages;
the charts (plots.py, one matplotlib path for SVG and PNG); the `orthoreg report` command."""
