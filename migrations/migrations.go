// Package migrations holds the database schema as numbered, forward-only
// goose SQL migrations, embedded so that the binary carries its own schema.
//
// Two sets are kept in step, one file for one file with the same number:
// mysql/ for MySQL and MariaDB, and sqlite/ for the embedded SQLite stand-in.
// A change to the schema adds the next number to both folders; an applied
// file is never edited. infra/mysqlstore applies them with Store.Migrate.
package migrations

import "embed"

// FS holds mysql/*.sql and sqlite/*.sql; pass fs.Sub(FS, "mysql") or
// fs.Sub(FS, "sqlite") to goose.
//
//go:embed mysql/*.sql sqlite/*.sql
var FS embed.FS
