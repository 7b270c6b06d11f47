"""SQLite storage. Only the engine, the client and their query helpers import this."""
