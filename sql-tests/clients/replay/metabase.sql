-- Replayed by sql-tests/clients/ReplayJdbc.java against a server loaded with
-- ../schema.sql. Added here: "-- @expect <text>" lines (the block's result
-- must contain the text), "-- @param database" and ${database} (the
-- database connected to, where the recording named its own).
-- Metabase (v0.55.1) PostgreSQL sync/connection statements, replayed through pgjdbc.
-- PROVENANCE: statement texts as recorded against a pgwire server by the datafusion-postgres
-- project (tests/metabase.rs); NOT captured from a live Metabase here (no Metabase on this
-- machine). pgjdbc's own connection statements (SET extra_float_digits, SET application_name =
-- 'PostgreSQL JDBC Driver') are produced by the replaying pgjdbc itself and are not listed.
-- @@ SET application_name (Metabase sets its own name)
SET application_name = 'Metabase v0.55.1 [f8f63fdf-d8f8-4573-86ea-4fe4a9548041]'
-- @@ SHOW TRANSACTION ISOLATION LEVEL
SHOW TRANSACTION ISOLATION LEVEL
-- @@ SET SESSION CHARACTERISTICS ... READ UNCOMMITTED
SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ UNCOMMITTED
-- @@ sync: list schemas (DatabaseMetaData.getSchemas, pgjdbc 42.7 form with current_database())
-- @expect public
SELECT nspname AS "TABLE_SCHEM", current_database() AS "TABLE_CATALOG" FROM pg_catalog.pg_namespace  WHERE nspname <> 'pg_toast' AND (nspname !~ '^pg_temp_'  OR nspname = (pg_catalog.current_schemas(true))[1]) AND (nspname !~ '^pg_toast_temp_'  OR nspname = replace((pg_catalog.current_schemas(true))[1], 'pg_temp_', 'pg_toast_temp_'))  ORDER BY "TABLE_SCHEM"
-- @@ sync: current user table privileges
-- @expect bids
-- @expect high_bids
-- @expect avg_price
-- @expect auctions
with table_privileges as (
         select
           NULL as role,
           t.schemaname as schema,
           t.objectname as table,
           pg_catalog.has_any_column_privilege(current_user, '"' || replace(t.schemaname, '"', '""') || '"' || '.' || '"' || replace(t.objectname, '"', '""') || '"',  'update') as update,
           pg_catalog.has_any_column_privilege(current_user, '"' || replace(t.schemaname, '"', '""') || '"' || '.' || '"' || replace(t.objectname, '"', '""') || '"',  'select') as select,
           pg_catalog.has_any_column_privilege(current_user, '"' || replace(t.schemaname, '"', '""') || '"' || '.' || '"' || replace(t.objectname, '"', '""') || '"',  'insert') as insert,
           pg_catalog.has_table_privilege(     current_user, '"' || replace(t.schemaname, '"', '""') || '"' || '.' || '"' || replace(t.objectname, '"', '""') || '"',  'delete') as delete
         from (
           select schemaname, tablename as objectname from pg_catalog.pg_tables
           union
           select schemaname, viewname as objectname from pg_catalog.pg_views
           union
           select schemaname, matviewname as objectname from pg_catalog.pg_matviews
         ) t
         where t.schemaname !~ '^pg_'
           and t.schemaname <> 'information_schema'
           and pg_catalog.has_schema_privilege(current_user, t.schemaname, 'usage')
        )
        select t.*
        from table_privileges t
-- @@ sync: describe-database (tables, views, matviews with description and estimated row count)
-- @expect bids|TABLE|Nexmark-style bid stream
-- @expect high_bids|VIEW
-- @expect avg_price|MATERIALIZED VIEW
-- @expect auctions|TABLE
SELECT "n"."nspname" AS "schema", "c"."relname" AS "name", CASE "c"."relkind" WHEN 'r' THEN 'TABLE' WHEN 'p' THEN 'PARTITIONED TABLE' WHEN 'v' THEN 'VIEW' WHEN 'f' THEN 'FOREIGN TABLE' WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE NULL END AS "type", "d"."description" AS "description", "stat"."n_live_tup" AS "estimated_row_count" FROM "pg_catalog"."pg_class" AS "c" INNER JOIN "pg_catalog"."pg_namespace" AS "n" ON "c"."relnamespace" = "n"."oid" LEFT JOIN "pg_catalog"."pg_description" AS "d" ON ("c"."oid" = "d"."objoid") AND ("d"."objsubid" = '0') AND ("d"."classoid" = 'pg_class'::regclass) LEFT JOIN "pg_stat_user_tables" AS "stat" ON ("n"."nspname" = "stat"."schemaname") AND ("c"."relname" = "stat"."relname") WHERE ("c"."relnamespace" = "n"."oid") AND ("n"."nspname" !~ '^pg_') AND ("n"."nspname" <> 'information_schema') AND c.relkind in ('r', 'p', 'v', 'f', 'm') AND ("n"."nspname" IN ('public')) ORDER BY "type" ASC, "schema" ASC, "name" ASC
-- @@ SET SESSION CHARACTERISTICS ... READ COMMITTED
SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED
-- @@ SET SESSION CHARACTERISTICS ... READ UNCOMMITTED (again)
SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ UNCOMMITTED
-- @@ show timezone
-- @expect UTC
show timezone
-- @@ query builder: generated SELECT with LIMIT (Metabase MBQL -> SQL)
-- @expect 2|220|2024-01-01 10:01:30
SELECT "public"."bids"."auction" AS "auction", "public"."bids"."price" AS "price", "public"."bids"."date_time" AS "date_time" FROM "public"."bids" LIMIT 2000
-- @@ query builder: aggregation with date_trunc grouping
-- @expect 2024-01-01 10:01:00|210
SELECT DATE_TRUNC('minute', "public"."bids"."date_time") AS "date_time", AVG("public"."bids"."price") AS "avg" FROM "public"."bids" GROUP BY DATE_TRUNC('minute', "public"."bids"."date_time") ORDER BY DATE_TRUNC('minute', "public"."bids"."date_time") ASC
