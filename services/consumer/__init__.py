"""The consumer service: customer lines in, enriched customer rows out."""
