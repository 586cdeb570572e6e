"""Tracking layer: metric schema, journal, asynchronous logging, autolog and adapters."""
