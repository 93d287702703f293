"""In-memory fakes of Paraaf's own store interfaces, one module per service, for unit tests of handlers.
Each fake passes the same contract tests as the PostgreSQL store it stands in for."""
