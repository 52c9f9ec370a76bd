-- Runs once, when the postgres service creates its data volume, in database `shop`.
CREATE DATABASE cdcsync_state;  -- the service's own state (pipeline.yaml: state.url)

CREATE TABLE customers (
    id         bigint PRIMARY KEY,
    name       text NOT NULL,
    email      text,
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- Old row images in the change stream (deletes and updates carry the whole row).
ALTER TABLE customers REPLICA IDENTITY FULL;
INSERT INTO customers (id, name, email) VALUES
    (1, 'Ada Lovelace', 'ada@example.com'),
    (2, 'Alan Turing', 'alan@example.com');
