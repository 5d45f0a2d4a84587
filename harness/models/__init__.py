"""Model sources (where weights come from) and the one loader every model goes through."""
