package sqlite

// Migrations lets tests build a database as an older berth left it.
var Migrations = migrations
