"""Reports read from run directories: results.csv, summary.md, report.html,
the cross-platform merge and the compare gate. Never imports the engine."""
