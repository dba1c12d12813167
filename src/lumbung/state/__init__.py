"""Durable state: the database that outlives a request (stored Responses, and more to come)."""
