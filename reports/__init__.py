"""Reports: tables, plots, HTML pages, comparisons and the pass/fail gate."""
