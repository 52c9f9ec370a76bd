-- Runs once, when the mariadb service creates its data volume, after the image
-- created database `crm` and user `cdcsync` (MARIADB_DATABASE / MARIADB_USER).
-- Reading the binlog needs server-wide privileges that the image does not grant.
GRANT REPLICATION SLAVE, REPLICATION CLIENT, BINLOG MONITOR, SLAVE MONITOR, RELOAD, LOCK TABLES,
      SELECT ON *.* TO 'cdcsync'@'%';

CREATE TABLE crm.customers (
    id         BIGINT PRIMARY KEY,
    name       VARCHAR(200) NOT NULL,
    email      VARCHAR(200),
    updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)
) CHARACTER SET utf8mb4;
INSERT INTO crm.customers (id, name, email) VALUES
    (2, 'Alan Turing', 'turing@example.org'),
    (3, 'Grace Hopper', 'grace@example.com');
