package postgres

// component names this store's row in schema_versions.
const component = "meta"

// migrations are applied in order under pgdb.Migrate's lock. Append, never
// edit: a released database has run the old ones.
//
// The model is the SQLite store's: times are Unix nanoseconds, manifests
// keep their bytes in the database. Text that is listed in order (names,
// tags, digests) is COLLATE "C" so the order is bytewise whatever locale
// the cluster was created with, as the registry API and SQLite order it.
var migrations = []string{
	`
CREATE TABLE repositories (
	id         BIGSERIAL PRIMARY KEY,
	name       TEXT COLLATE "C" NOT NULL UNIQUE,
	created_at BIGINT NOT NULL
);

CREATE TABLE blobs (
	digest    TEXT COLLATE "C" PRIMARY KEY,
	size      BIGINT NOT NULL,
	last_used BIGINT NOT NULL
);

CREATE TABLE repository_blobs (
	repository_id BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
	digest        TEXT COLLATE "C" NOT NULL REFERENCES blobs(digest),
	linked_at     BIGINT NOT NULL,
	PRIMARY KEY (repository_id, digest)
);
CREATE INDEX repository_blobs_by_digest ON repository_blobs(digest);

CREATE TABLE manifests (
	repository_id BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
	digest        TEXT COLLATE "C" NOT NULL,
	media_type    TEXT NOT NULL,
	artifact_type TEXT NOT NULL,
	subject       TEXT COLLATE "C",
	annotations   TEXT,
	size          BIGINT NOT NULL,
	content       BYTEA NOT NULL,
	pushed_at     BIGINT NOT NULL,
	PRIMARY KEY (repository_id, digest)
);
CREATE INDEX manifests_by_subject ON manifests(repository_id, subject) WHERE subject IS NOT NULL;
CREATE INDEX manifests_by_digest ON manifests(digest);
CREATE INDEX manifests_by_push ON manifests(repository_id, pushed_at DESC, digest);

CREATE TABLE manifest_references (
	repository_id BIGINT NOT NULL,
	manifest      TEXT COLLATE "C" NOT NULL,
	digest        TEXT COLLATE "C" NOT NULL,
	kind          SMALLINT NOT NULL,
	present       BOOLEAN NOT NULL,
	PRIMARY KEY (repository_id, manifest, digest),
	FOREIGN KEY (repository_id, manifest) REFERENCES manifests(repository_id, digest) ON DELETE CASCADE
);
CREATE INDEX manifest_references_by_digest ON manifest_references(digest, repository_id);

CREATE TABLE tags (
	repository_id BIGINT NOT NULL,
	name          TEXT COLLATE "C" NOT NULL,
	digest        TEXT COLLATE "C" NOT NULL,
	updated_at    BIGINT NOT NULL,
	PRIMARY KEY (repository_id, name),
	FOREIGN KEY (repository_id, digest) REFERENCES manifests(repository_id, digest) ON DELETE CASCADE
);
CREATE INDEX tags_by_digest ON tags(repository_id, digest);

CREATE TABLE uploads (
	id            TEXT COLLATE "C" PRIMARY KEY,
	repository_id BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
	account       TEXT NOT NULL,
	started_at    BIGINT NOT NULL
);
CREATE INDEX uploads_by_repository ON uploads(repository_id);
CREATE INDEX uploads_by_account ON uploads(account);

CREATE TABLE pruned_blob_links (
	repository_id BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
	digest        TEXT COLLATE "C" NOT NULL,
	pruned_at     BIGINT NOT NULL,
	PRIMARY KEY (repository_id, digest)
);
CREATE INDEX pruned_blob_links_by_time ON pruned_blob_links(pruned_at);

-- The outbox. A sequence number is never reused; recordEvent serialises
-- the writers so numbers become visible in order (see events.go).
CREATE TABLE events (
	seq     BIGSERIAL PRIMARY KEY,
	at      BIGINT NOT NULL,
	payload BYTEA NOT NULL
);
`,
	// 2: when each signature or attestation was first stored
	// (meta.Manifest.Signatures). Rows outlive their manifests: a
	// signature's arrival is history, and it is small.
	`
CREATE TABLE signature_arrivals (
	key        TEXT COLLATE "C" PRIMARY KEY,
	first_seen BIGINT NOT NULL
);
`,
}
