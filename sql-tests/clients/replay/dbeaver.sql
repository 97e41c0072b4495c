-- Replayed by sql-tests/clients/ReplayJdbc.java against a server loaded with
-- ../schema.sql. Added here: "-- @expect <text>" lines (the block's result
-- must contain the text), "-- @param database" and ${database} (the
-- database connected to, where the recording named its own).
-- DBeaver (25.x, PostgreSQL plugin) navigator statements, replayed through pgjdbc.
-- PROVENANCE: statement texts as recorded from DBeaver by the datafusion-postgres project
-- (tests/dbeaver.rs) and the YottaDB Octo project (DBeaver connect-query test); NOT captured from
-- a live DBeaver here. Where DBeaver binds a parameter ($1) the replay binds one too (setLong /
-- setString), as DBeaver does. pgjdbc's own connection statements come from the replaying driver.
-- @@ connect: SET application_name (DBeaver client info)
SET application_name = 'DBeaver 25.1.5 - Main <streamdb>'
-- @@ connect: current schema and session user
-- @expect public
SELECT current_schema(),session_user
-- @@ connect: list schemas with descriptions
-- @expect public
SELECT n.oid,n.*,d.description FROM pg_catalog.pg_namespace n LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=n.oid AND d.objsubid=0 AND d.classoid='pg_namespace'::regclass ORDER BY nspname
-- @@ connect: SHOW search_path
-- @expect public
SHOW search_path
-- @@ connect: current database row
-- @expect ${database}
SELECT db.oid,db.* FROM pg_catalog.pg_database db WHERE datname='${database}'
-- @@ connect: database description ($1 = datname)
-- @param database
select description from pg_shdescription join pg_database on objoid = pg_database.oid where datname = ?
-- @@ connect: standard_conforming_strings from pg_settings
SELECT * FROM pg_catalog.pg_settings where name='standard_conforming_strings'
-- @@ connect: version()
-- @expect PostgreSQL 15
SELECT version()
-- @@ connect: SHOW TRANSACTION ISOLATION LEVEL
SHOW TRANSACTION ISOLATION LEVEL
-- @@ connect: probe pg_enum availability
SELECT * FROM pg_catalog.pg_enum WHERE 1<>1 LIMIT 1
-- @@ connect: probe pg_class.reltype availability
SELECT reltype FROM pg_catalog.pg_class WHERE 1<>1 LIMIT 1
-- @@ connect: load all data types
-- @expect int8
-- @expect timestamp
SELECT t.oid,t.*,c.relkind,format_type(nullif(t.typbasetype, 0), t.typtypmod) as base_type_name, d.description FROM pg_catalog.pg_type t LEFT OUTER JOIN pg_catalog.pg_type et ON et.oid=t.typelem LEFT OUTER JOIN pg_catalog.pg_class c ON c.oid=t.typrelid LEFT OUTER JOIN pg_catalog.pg_description d ON t.oid=d.objoid WHERE t.typname IS NOT NULL AND (c.relkind IS NULL OR c.relkind = 'c') AND (et.typcategory IS NULL OR et.typcategory <> 'C')
-- @@ connect: encodings
SELECT c.contoencoding as encid,pg_catalog.pg_encoding_to_char(c.contoencoding) as encname FROM pg_catalog.pg_conversion c GROUP BY c.contoencoding ORDER BY 2
-- @@ navigator: roles with descriptions
SELECT a.oid,a.*,pd.description FROM pg_catalog.pg_roles a left join pg_catalog.pg_shdescription pd on a.oid = pd.objoid ORDER BY a.rolname
-- @@ navigator: tablespaces
SELECT t.oid,t.*,pg_tablespace_location(t.oid) loc FROM pg_catalog.pg_tablespace t ORDER BY t.oid
-- @@ navigator: tables of schema public ($1 = namespace oid 2200)
-- @expect bids
-- @expect high_bids
-- @expect avg_price
-- @expect auctions
-- @param long 2200
SELECT c.oid,c.*,d.description,pg_catalog.pg_get_expr(c.relpartbound, c.oid) as partition_expr,  pg_catalog.pg_get_partkeydef(c.oid) as partition_key
FROM pg_catalog.pg_class c
LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=c.oid AND d.objsubid=0 AND d.classoid='pg_class'::regclass
WHERE c.relnamespace=? AND c.relkind not in ('i','I','c')
-- @@ navigator: table sizes of schema public
-- @param long 2200
select c.oid,pg_catalog.pg_total_relation_size(c.oid) as total_rel_size,pg_catalog.pg_relation_size(c.oid) as rel_size FROM pg_class c WHERE c.relnamespace=?
-- @@ open table bids: columns ($1 = table oid)
-- @expect auction
-- @expect bidder
-- @expect price
-- @expect date_time
-- @param oid-of public.bids
SELECT c.relname,a.*,pg_catalog.pg_get_expr(ad.adbin, ad.adrelid, true) as def_value,dsc.description FROM pg_catalog.pg_attribute a INNER JOIN pg_catalog.pg_class c ON (a.attrelid=c.oid) LEFT OUTER JOIN pg_catalog.pg_attrdef ad ON (a.attrelid=ad.adrelid AND a.attnum = ad.adnum) LEFT OUTER JOIN pg_catalog.pg_description dsc ON (c.oid=dsc.objoid AND a.attnum = dsc.objsubid) WHERE NOT a.attisdropped AND c.oid=? ORDER BY a.attnum
-- @@ open table bids: constraints
-- @param oid-of public.bids
SELECT c.oid,c.*,t.relname as tabrelname,rt.relnamespace as refnamespace,d.description, case when c.contype='c' then "substring"(pg_get_constraintdef(c.oid), 7) else null end consrc_copy FROM pg_catalog.pg_constraint c INNER JOIN pg_catalog.pg_class t ON t.oid=c.conrelid LEFT OUTER JOIN pg_catalog.pg_class rt ON rt.oid=c.confrelid LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=c.oid AND d.objsubid=0 AND d.classoid='pg_constraint'::regclass WHERE c.conrelid=? ORDER BY c.oid
-- @@ open table bids: referencing constraint namespaces
-- @param oid-of public.bids
SELECT DISTINCT connamespace FROM pg_catalog.pg_constraint WHERE confrelid=?
-- @@ open table bids: indexes
-- @param oid-of public.bids
SELECT i.*,i.indkey as keys,c.relname,c.relnamespace,c.relam,c.reltablespace,tc.relname as tabrelname,dsc.description,pg_catalog.pg_get_expr(i.indpred, i.indrelid) as pred_expr,pg_catalog.pg_get_expr(i.indexprs, i.indrelid, true) as expr,pg_catalog.pg_relation_size(i.indexrelid) as index_rel_size,pg_catalog.pg_stat_get_numscans(i.indexrelid) as index_num_scans FROM pg_catalog.pg_index i INNER JOIN pg_catalog.pg_class c ON c.oid=i.indexrelid INNER JOIN pg_catalog.pg_class tc ON tc.oid=i.indrelid LEFT OUTER JOIN pg_catalog.pg_description dsc ON i.indexrelid=dsc.objoid WHERE i.indrelid=? ORDER BY c.relname
-- @@ open table bids: inheritance
-- @param oid-of public.bids
SELECT i.*,c.relnamespace FROM pg_catalog.pg_inherits i,pg_catalog.pg_class c WHERE i.inhrelid=? AND c.oid=i.inhparent ORDER BY i.inhseqno
-- @@ open table bids: triggers
-- @param oid-of public.bids
SELECT x.oid,x.*,p.pronamespace as func_schema_id,d.description FROM pg_catalog.pg_trigger x LEFT OUTER JOIN pg_catalog.pg_proc p ON p.oid=x.tgfoid LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=x.oid AND d.objsubid=0 WHERE x.tgrelid = ? AND NOT x.tgisinternal
-- @@ open table bids: policies
select * from pg_catalog.pg_policies where schemaname='public' and tablename='bids'
-- @@ open view high_bids: rules ($1 = view oid)
-- @param oid-of public.high_bids
SELECT r.oid,r.*, pg_get_ruledef(r.oid) AS definition FROM pg_rewrite r WHERE r.ev_class=? AND r.rulename <> '_RETURN'::name
-- @@ open view high_bids: columns
-- @expect auction
-- @expect bidder
-- @expect price
-- @expect date_time
-- @param oid-of public.high_bids
SELECT c.relname,a.*,pg_catalog.pg_get_expr(ad.adbin, ad.adrelid, true) as def_value,dsc.description FROM pg_catalog.pg_attribute a INNER JOIN pg_catalog.pg_class c ON (a.attrelid=c.oid) LEFT OUTER JOIN pg_catalog.pg_attrdef ad ON (a.attrelid=ad.adrelid AND a.attnum = ad.adnum) LEFT OUTER JOIN pg_catalog.pg_description dsc ON (c.oid=dsc.objoid AND a.attnum = dsc.objsubid) WHERE NOT a.attisdropped AND c.oid=? ORDER BY a.attnum
-- @@ data tab: SELECT with LIMIT (DBeaver result set viewer)
-- @expect 3|103|10|2024-01-01 10:02:00
SELECT * FROM public.bids
LIMIT 200

-- @@ open table auctions: constraints (a primary key)
-- @param oid-of public.auctions
-- @expect auctions_pkey
-- @expect PRIMARY KEY (id, seller)
SELECT c.oid,c.*,t.relname as tabrelname,rt.relnamespace as refnamespace,d.description, pg_get_constraintdef(c.oid) AS definition FROM pg_catalog.pg_constraint c INNER JOIN pg_catalog.pg_class t ON t.oid=c.conrelid LEFT OUTER JOIN pg_catalog.pg_class rt ON rt.oid=c.confrelid LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=c.oid AND d.objsubid=0 AND d.classoid='pg_constraint'::regclass WHERE c.conrelid=?
-- @@ open table auctions: indexes
-- @param oid-of public.auctions
-- @expect auctions_pkey
-- @expect {2,1}
SELECT i.*,i.indkey as keys,c.relname,c.relnamespace,c.relam,c.reltablespace,tc.relname as tabrelname,dsc.description,pg_catalog.pg_get_expr(i.indpred, i.indrelid) as pred_expr,pg_catalog.pg_get_expr(i.indexprs, i.indrelid, true) as expr,pg_catalog.pg_relation_size(i.indexrelid) as index_rel_size,pg_catalog.pg_stat_get_numscans(i.indexrelid) as index_num_scans FROM pg_catalog.pg_index i INNER JOIN pg_catalog.pg_class c ON c.oid=i.indexrelid INNER JOIN pg_catalog.pg_class tc ON tc.oid=i.indrelid LEFT OUTER JOIN pg_catalog.pg_description dsc ON i.indexrelid=dsc.objoid WHERE i.indrelid=? ORDER BY tabrelname, c.relname
