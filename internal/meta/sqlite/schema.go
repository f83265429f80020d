package sqlite

// migrations are applied in order; PRAGMA user_version records how many
// have run. Append, never edit: a released database has run the old ones.
//
// Times are Unix nanoseconds. Manifests keep their bytes in the database:
// they are small (the registry caps them), read far more often than blobs,
// and one indexed read serves them with no file I/O. Tables keyed by text
// with no large columns are WITHOUT ROWID so the key is the row.
var migrations = []string{
	`
CREATE TABLE repositories (
	id         INTEGER PRIMARY KEY,
	name       TEXT NOT NULL UNIQUE,
	created_at INTEGER NOT NULL
);

CREATE TABLE blobs (
	digest    TEXT PRIMARY KEY,
	size      INTEGER NOT NULL,
	last_used INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE repository_blobs (
	repository_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
	digest        TEXT NOT NULL REFERENCES blobs(digest),
	linked_at     INTEGER NOT NULL,
	PRIMARY KEY (repository_id, digest)
) WITHOUT ROWID;
CREATE INDEX repository_blobs_by_digest ON repository_blobs(digest);

CREATE TABLE manifests (
	repository_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
	digest        TEXT NOT NULL,
	media_type    TEXT NOT NULL,
	artifact_type TEXT NOT NULL,
	subject       TEXT,
	annotations   TEXT,
	size          INTEGER NOT NULL,
	content       BLOB NOT NULL,
	pushed_at     INTEGER NOT NULL,
	UNIQUE (repository_id, digest)
);
CREATE INDEX manifests_by_subject ON manifests(repository_id, subject) WHERE subject IS NOT NULL;

CREATE TABLE manifest_references (
	repository_id INTEGER NOT NULL,
	manifest      TEXT NOT NULL,
	digest        TEXT NOT NULL,
	kind          INTEGER NOT NULL,
	PRIMARY KEY (repository_id, manifest, digest),
	FOREIGN KEY (repository_id, manifest) REFERENCES manifests(repository_id, digest) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX manifest_references_by_digest ON manifest_references(digest, repository_id);

CREATE TABLE tags (
	repository_id INTEGER NOT NULL,
	name          TEXT NOT NULL,
	digest        TEXT NOT NULL,
	updated_at    INTEGER NOT NULL,
	PRIMARY KEY (repository_id, name),
	FOREIGN KEY (repository_id, digest) REFERENCES manifests(repository_id, digest) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX tags_by_digest ON tags(repository_id, digest);

CREATE TABLE uploads (
	id            TEXT PRIMARY KEY,
	repository_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
	started_at    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX uploads_by_repository ON uploads(repository_id);
`,
	// 2: what a manifest's layers were when it was pushed, and the links
	// garbage collection pruned, so a manifest naming a layer that GC took
	// from its repository is refused rather than stored broken. References
	// stored before this migration count as present when the repository
	// links the blob now (its manifest kept the link from being pruned).
	`
ALTER TABLE manifest_references ADD COLUMN present INTEGER NOT NULL DEFAULT 0;
UPDATE manifest_references SET present = 1 WHERE kind = 0 OR EXISTS (
	SELECT 1 FROM repository_blobs rb
	WHERE rb.repository_id = manifest_references.repository_id AND rb.digest = manifest_references.digest);

CREATE TABLE pruned_blob_links (
	repository_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
	digest        TEXT NOT NULL,
	pruned_at     INTEGER NOT NULL,
	PRIMARY KEY (repository_id, digest)
) WITHOUT ROWID;
CREATE INDEX pruned_blob_links_by_time ON pruned_blob_links(pruned_at);
`,
	// 3: who started an upload session, so sessions can be capped per
	// account.
	`
ALTER TABLE uploads ADD COLUMN account TEXT NOT NULL DEFAULT '';
CREATE INDEX uploads_by_account ON uploads(account);
`,
	// 4: the outbox: changes recorded in the transaction that makes them
	// (meta.Store.Events); and manifests by digest alone, for
	// ManifestRepositories. AUTOINCREMENT: a sequence number is never
	// reused, even after the newest events are deleted, so a reader's
	// position stays valid.
	`
CREATE TABLE events (
	seq     INTEGER PRIMARY KEY AUTOINCREMENT,
	at      INTEGER NOT NULL,
	payload BLOB NOT NULL
);
CREATE INDEX manifests_by_digest ON manifests(digest);
`,
	// 5: when each signature or attestation was first stored
	// (meta.Manifest.Signatures). Rows outlive their manifests: a
	// signature's arrival is history, and it is small.
	`
CREATE TABLE signature_arrivals (
	key        TEXT PRIMARY KEY,
	first_seen INTEGER NOT NULL
) WITHOUT ROWID;
`,
}
