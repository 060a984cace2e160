"""Reading for analysis: experiment configs and their gatherer."""
