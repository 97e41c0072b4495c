// Replays a BI tool's recorded catalog statements (replay/*.sql) through
// pgjdbc, as the tool's own driver sends them, and checks each result.
// Usage: java -cp postgresql.jar ReplayJdbc.java HOST PORT USER DB REPLAY_FILE
//
// File format: blocks that start with "-- @@ <label>", then optional lines
// "-- @param long <n>", "-- @param oid-of <schema.table>", "-- @param database"
// (bound in order, as a PreparedStatement), "-- @expect <text>" (the rows,
// one per line with cells joined by '|', must contain the text), then the
// SQL. "${database}" in the SQL is the database connected to.
import java.nio.file.*;
import java.sql.*;
import java.util.*;

public class ReplayJdbc {
    record Block(String label, List<String> params, List<String> expects, String sql) {}

    static List<Block> parse(List<String> lines, String database) {
        List<Block> blocks = new ArrayList<>();
        String label = null;
        List<String> params = new ArrayList<>(), expects = new ArrayList<>();
        StringBuilder sql = new StringBuilder();
        for (String line : lines) {
            if (line.startsWith("-- @@")) {
                if (label != null) blocks.add(new Block(label, params, expects, sql.toString().trim()));
                label = line.substring(5).trim();
                params = new ArrayList<>();
                expects = new ArrayList<>();
                sql.setLength(0);
            } else if (line.startsWith("-- @param ")) {
                params.add(line.substring(10).trim());
            } else if (line.startsWith("-- @expect ")) {
                expects.add(line.substring(11).replace("${database}", database));
            } else if (label != null && !line.startsWith("--")) {
                sql.append(line.replace("${database}", database)).append('\n');
            }
        }
        if (label != null) blocks.add(new Block(label, params, expects, sql.toString().trim()));
        return blocks;
    }

    static long oidOf(Connection c, String qualified) throws SQLException {
        String[] parts = qualified.split("\\.", 2);
        try (PreparedStatement ps = c.prepareStatement(
                "SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
                        + "WHERE n.nspname = ? AND c.relname = ?")) {
            ps.setString(1, parts[0]);
            ps.setString(2, parts[1]);
            try (ResultSet rs = ps.executeQuery()) {
                if (!rs.next()) throw new SQLException("no relation " + qualified);
                return rs.getLong(1);
            }
        }
    }

    static String rows(Statement st, boolean hasRows) throws SQLException {
        StringBuilder out = new StringBuilder();
        if (!hasRows) return "";
        try (ResultSet rs = st.getResultSet()) {
            int n = rs.getMetaData().getColumnCount();
            while (rs.next()) {
                for (int i = 1; i <= n; i++) {
                    if (i > 1) out.append('|');
                    out.append(rs.getString(i));
                }
                out.append('\n');
            }
        }
        return out.toString();
    }

    public static void main(String[] a) throws Exception {
        String url = "jdbc:postgresql://" + a[0] + ":" + a[1] + "/" + a[3];
        Properties p = new Properties();
        p.setProperty("user", a[2]);
        List<Block> blocks = parse(Files.readAllLines(Path.of(a[4])), a[3]);
        List<String> failures = new ArrayList<>();
        try (Connection c = DriverManager.getConnection(url, p)) {
            for (Block b : blocks) {
                try {
                    String result;
                    if (b.params().isEmpty()) {
                        try (Statement st = c.createStatement()) {
                            result = rows(st, st.execute(b.sql()));
                        }
                    } else {
                        try (PreparedStatement ps = c.prepareStatement(b.sql())) {
                            int i = 1;
                            for (String spec : b.params()) {
                                if (spec.startsWith("long ")) ps.setLong(i++, Long.parseLong(spec.substring(5).trim()));
                                else if (spec.startsWith("oid-of ")) ps.setLong(i++, oidOf(c, spec.substring(7).trim()));
                                else if (spec.equals("database")) ps.setString(i++, a[3]);
                                else throw new IllegalArgumentException("unknown @param " + spec);
                            }
                            result = rows(ps, ps.execute());
                        }
                    }
                    for (String e : b.expects()) {
                        if (!result.contains(e)) throw new AssertionError("missing \"" + e + "\" in:\n" + result);
                    }
                    System.out.println("ok    " + b.label() + " (" + result.lines().count() + " rows)");
                } catch (Throwable t) {
                    failures.add(b.label());
                    System.out.println("FAIL  " + b.label() + " -> " + t);
                }
            }
        }
        if (!failures.isEmpty()) {
            System.out.println(failures.size() + " replayed statement(s) failed: " + failures);
            System.exit(1);
        }
        System.out.println("all " + blocks.size() + " replayed statements passed");
    }
}
