"""Test support: real server processes and OpenAI spec validation."""
