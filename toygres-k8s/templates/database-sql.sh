# split_database_sql CREATE PROPERTIES: splits `pg_dump --create --schema-only --exclude-schema='*'`
# (plain, on stdin) exactly as toygres_core::manifest::DatabaseSql::from_pg_dump does: the DATABASE
# entry into file CREATE; the DATABASE PROPERTIES entry and the database's COMMENT, ACL and SECURITY
# LABEL entries into file PROPERTIES; nothing else. Scaffolding (blank lines, comments, meta-commands,
# SET and set_config lines) is dropped, except inside an open string literal.
split_database_sql() {
  : >"$1"
  : >"$2"
  LC_ALL=C awk -v create="$1" -v props="$2" '
    function section_of(header,   rest, name, kind, i) {
      rest = substr(header, 10)
      i = index(rest, "; Type: ")
      if (i > 0) { name = substr(rest, 1, i - 1); rest = substr(rest, i + 8) } else { name = rest; rest = "" }
      i = index(rest, ";")
      kind = (i > 0) ? substr(rest, 1, i - 1) : rest
      if (kind == "DATABASE") return "create"
      if (kind == "DATABASE PROPERTIES") return "props"
      if ((kind == "COMMENT" || kind == "ACL" || kind == "SECURITY LABEL") && substr(name, 1, 9) == "DATABASE ") return "props"
      return "other"
    }
    {
      line = $0
      sub(/\r$/, "", line)
      if (!literal) {
        if (substr(line, 1, 9) == "-- Name: ") { section = section_of(line); next }
        if (line ~ /^[ \t\v\f]*$/ || substr(line, 1, 2) == "--" || substr(line, 1, 1) == "\\" ||
            substr(line, 1, 4) == "SET " || substr(line, 1, 29) == "SELECT pg_catalog.set_config(") next
      }
      copy = line
      if (gsub(/\047/, "", copy) % 2 == 1) literal = !literal
      if (section == "create") print line > create
      else if (section == "props") print line > props
    }'
}
