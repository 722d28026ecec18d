//! End-to-end tests that run the three services against a real nats-server.
