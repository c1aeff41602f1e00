"""What each DAG runs: one module per duty, callable from a task or the CLI."""
