"""The producer service: sync requests in, one customer line message per customer out."""
