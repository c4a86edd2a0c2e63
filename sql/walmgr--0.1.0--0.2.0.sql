-- walmgr 0.1.0 -> 0.2.0: ALTER EXTENSION walmgr UPDATE.
--
-- 0.2.0 adds in-progress WAL shipping (the background worker), synchronous standbys and
-- periodic commands: walmgr.status gains the shipper's columns, and sync(), sync_lsn(),
-- periodic() and synch_standby() are new. Everything here ends as walmgr--0.2.0.sql
-- creates it (tests/tests/extension_upgrade.rs compares every object and grant).
--
-- Until this has run, the 0.1.0 definitions run on the 0.2.0 library: walmgr.status shows
-- the 0.1.0 columns (the tuple is formed with the declared row type; the test checks it),
-- and archiving does not use the SQL objects at all.

\echo Use "ALTER EXTENSION walmgr UPDATE TO '0.2.0'" to load this file. \quit

-- status_row() returns more columns: a function's result type cannot change in place, so
-- the view over it and the function are dropped and made again, with their comment and
-- grants. The schema's USAGE grant to pg_monitor stays as 0.1.0 made it.
DROP VIEW @extschema@.status;
DROP FUNCTION @extschema@.status_row();

CREATE FUNCTION @extschema@."status_row"() RETURNS TABLE (
	"last_archived_wal" TEXT,
	"last_archived_time" timestamp with time zone,
	"files_waiting" bigint,
	"bytes_behind" bigint,
	"last_failed_wal" TEXT,
	"last_error" TEXT,
	"last_error_time" timestamp with time zone,
	"transport" TEXT,
	"archived_count" bigint,
	"failed_count" bigint,
	"shipper_state" TEXT,
	"shipper_pid" INT,
	"partial_lsn" TEXT,
	"partial_time" timestamp with time zone,
	"partial_bytes_behind" bigint,
	"partial_shipped_bytes" bigint,
	"shipper_errors" bigint,
	"shipper_last_error" TEXT,
	"shipper_last_error_time" timestamp with time zone
)
STRICT
LANGUAGE c
AS 'MODULE_PATHNAME', 'status_row_wrapper';

CREATE VIEW @extschema@.status AS
    SELECT last_archived_wal, last_archived_time, files_waiting, bytes_behind,
           last_failed_wal, last_error, last_error_time, transport, archived_count,
           failed_count, shipper_state, shipper_pid, partial_lsn::pg_lsn AS partial_lsn,
           partial_time, partial_bytes_behind, partial_shipped_bytes, shipper_errors,
           shipper_last_error, shipper_last_error_time
    FROM @extschema@.status_row();
COMMENT ON VIEW @extschema@.status IS 'walmgr: archiving (last archived file, files waiting, last error) and in-progress WAL shipping (the LSN the standby holds, bytes behind the flush)';
REVOKE ALL ON FUNCTION @extschema@.status_row() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.status_row() TO pg_monitor;
GRANT SELECT ON @extschema@.status TO pg_monitor;

-- New in 0.2.0: the in-progress WAL shipper, periodic_command, synchronous standbys.
-- Superuser-only like setup() and stop(): each changes the server or runs a command.
CREATE FUNCTION @extschema@."periodic"() RETURNS bool
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'periodic_wrapper';

CREATE FUNCTION @extschema@."sync_lsn"() RETURNS TEXT
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'sync_lsn_wrapper';

CREATE FUNCTION @extschema@."synch_standby"(
	"names" TEXT,
	"dry_run" bool DEFAULT false
) RETURNS TEXT
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'synch_standby_wrapper';

CREATE FUNCTION @extschema@.sync() RETURNS pg_lsn LANGUAGE sql VOLATILE
    AS $$ SELECT @extschema@.sync_lsn()::pg_lsn $$;
COMMENT ON FUNCTION @extschema@.sync() IS 'ships in-progress WAL up to the current flush position; returns the LSN the standby holds';
REVOKE ALL ON FUNCTION @extschema@.sync_lsn() FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.sync() FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.periodic() FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.synch_standby(text, boolean) FROM PUBLIC;
