//! NATS JetStream wiring shared by the services: streams, buckets, publishing and consuming events.
