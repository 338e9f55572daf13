"""The `hivecast` command line."""
