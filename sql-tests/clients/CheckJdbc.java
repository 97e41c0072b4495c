// pgjdbc checks against a live Freshet loaded with sql-tests/clients/schema.sql:
// DatabaseMetaData as Metabase, DBeaver and Tableau use it, and a
// PreparedStatement run past prepareThreshold (named statement, binary
// results). Usage: java -cp postgresql.jar CheckJdbc.java HOST PORT USER DB
import java.sql.*;
import java.util.*;

public class CheckJdbc {
    static List<String> failures = new ArrayList<>();

    interface Check { void run() throws Exception; }

    static void check(String label, Check c) {
        try {
            c.run();
            System.out.println("ok    " + label);
        } catch (Throwable t) {
            failures.add(label);
            System.out.println("FAIL  " + label + " -> " + t);
        }
    }

    static void eq(Object got, Object want) {
        if (!Objects.equals(got, want)) throw new AssertionError("got " + got + ", want " + want);
    }

    static List<String> column(ResultSet rs, String name) throws SQLException {
        List<String> out = new ArrayList<>();
        while (rs.next()) out.add(rs.getString(name));
        rs.close();
        return out;
    }

    public static void main(String[] a) throws Exception {
        String url = "jdbc:postgresql://" + a[0] + ":" + a[1] + "/" + a[3];
        Properties p = new Properties();
        p.setProperty("user", a[2]);
        p.setProperty("prepareThreshold", "5");
        try (Connection c = DriverManager.getConnection(url, p)) {
            DatabaseMetaData md = c.getMetaData();
            check("DatabaseMetaData: product version", () -> eq(md.getDatabaseMajorVersion() >= 15, true));
            check("getSchemas", () -> eq(column(md.getSchemas(), "TABLE_SCHEM").contains("public"), true));
            check("getTables: tables, views, materialized views", () -> {
                ResultSet rs = md.getTables(null, "public", "%", new String[] {"TABLE", "VIEW", "MATERIALIZED VIEW"});
                Map<String, String> kinds = new TreeMap<>();
                while (rs.next()) kinds.put(rs.getString("TABLE_NAME"), rs.getString("TABLE_TYPE"));
                eq(kinds.toString(), "{auctions=TABLE, avg_price=MATERIALIZED VIEW, bids=TABLE, high_bids=VIEW}");
            });
            check("getColumns(bids)", () -> {
                ResultSet rs = md.getColumns(null, "public", "bids", null);
                List<String> cols = new ArrayList<>();
                while (rs.next()) cols.add(rs.getString("COLUMN_NAME") + ":" + rs.getString("TYPE_NAME"));
                eq(cols.toString(), "[auction:int8, bidder:int8, price:int8, date_time:timestamp]");
            });
            check("getColumns(avg_price)", () -> eq(column(md.getColumns(null, "public", "avg_price", "%"), "COLUMN_NAME").toString(), "[auction, avg_price, num_bids, last_bid]"));
            check("getPrimaryKeys: none for bids, (id, seller) for auctions", () -> {
                eq(column(md.getPrimaryKeys(null, "public", "bids"), "COLUMN_NAME").toString(), "[]");
                ResultSet rs = md.getPrimaryKeys(null, "public", "auctions");
                List<String> keys = new ArrayList<>();
                while (rs.next()) keys.add(rs.getString("COLUMN_NAME") + ":" + rs.getInt("KEY_SEQ") + ":" + rs.getString("PK_NAME"));
                eq(keys.toString(), "[id:1:auctions_pkey, seller:2:auctions_pkey]");
            });
            check("getIndexInfo(auctions): the primary key's unique index", () -> {
                ResultSet rs = md.getIndexInfo(null, "public", "auctions", false, true);
                List<String> cols = new ArrayList<>();
                while (rs.next()) cols.add(rs.getString("INDEX_NAME") + ":" + rs.getBoolean("NON_UNIQUE") + ":" + rs.getShort("ORDINAL_POSITION") + ":" + rs.getString("COLUMN_NAME"));
                eq(cols.toString(), "[auctions_pkey:false:1:id, auctions_pkey:false:2:seller]");
            });
            check("getImportedKeys and getExportedKeys: none", () -> {
                eq(column(md.getImportedKeys(null, "public", "bids"), "FKCOLUMN_NAME").toString(), "[]");
                eq(column(md.getExportedKeys(null, "public", "auctions"), "FKCOLUMN_NAME").toString(), "[]");
            });
            check("getTypeInfo lists int8 and text", () -> {
                List<String> names = column(md.getTypeInfo(), "TYPE_NAME");
                eq(names.contains("int8") && names.contains("text"), true);
            });
            check("PreparedStatement executed 7 times (named statement, binary results)", () -> {
                try (PreparedStatement ps = c.prepareStatement("SELECT bidder, price, date_time FROM bids WHERE auction = ? ORDER BY bidder")) {
                    for (int i = 0; i < 7; i++) {
                        ps.setLong(1, 2);
                        try (ResultSet rs = ps.executeQuery()) {
                            List<String> rows = new ArrayList<>();
                            while (rs.next()) rows.add(rs.getLong(1) + "/" + rs.getLong(2) + "/" + rs.getTimestamp(3));
                            eq(rows.toString(), "[100/200/2024-01-01 10:01:00.0, 102/220/2024-01-01 10:01:30.0]");
                        }
                    }
                }
            });
            check("PreparedStatement with setBigDecimal against a bigint column, setTimestamp, setObject", () -> {
                try (PreparedStatement ps = c.prepareStatement(
                        "SELECT bidder FROM bids WHERE price >= ? AND date_time >= ? AND auction = ? ORDER BY bidder")) {
                    ps.setBigDecimal(1, new java.math.BigDecimal("199.5"));
                    ps.setTimestamp(2, Timestamp.valueOf("2024-01-01 10:00:00"));
                    ps.setObject(3, 2);
                    try (ResultSet rs = ps.executeQuery()) {
                        List<String> rows = new ArrayList<>();
                        while (rs.next()) rows.add(rs.getString(1));
                        eq(rows.toString(), "[100, 102]");
                    }
                }
            });
            check("materialized view through a Statement", () -> {
                try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT auction, avg_price, num_bids FROM avg_price ORDER BY auction")) {
                    List<String> rows = new ArrayList<>();
                    while (rs.next()) rows.add(rs.getLong(1) + "/" + rs.getDouble(2) + "/" + rs.getLong(3));
                    eq(rows.toString(), "[1/62.5/2, 2/210.0/2, 3/10.0/1]");
                }
            });
        }
        if (!failures.isEmpty()) {
            System.out.println(failures.size() + " JDBC check(s) failed: " + failures);
            System.exit(1);
        }
        System.out.println("all JDBC checks passed");
    }
}
