package api

import (
	"net/http"
)

// JobQueued answers a request that queued background work.
type JobQueued struct {
	Queued string `json:"queued"`
}

// vulnDBStatus tells the state of the server's vulnerability database:
// its sources, the last update and its records. Any signed-in caller may
// read it (it is what their scans are matched against). A replica of a
// scale-out deployment first installs the published database if it has
// another, so every replica answers the same one.
func (a *API) vulnDBStatus(c *call) error {
	if a.opts.VulnDB == nil {
		return errNotScanning
	}
	if a.opts.Scans != nil {
		if err := a.opts.Scans.SyncDB(c.ctx()); err != nil {
			return err
		}
	}
	st := a.opts.VulnDB.Status()
	if st.Sources == nil {
		st.Sources = []string{}
	}
	return respond(c, http.StatusOK, st)
}

// updateVulnDB queues an update of the database now (administrators).
// Reports the update can change are re-matched after it.
func (a *API) updateVulnDB(c *call) error {
	if err := a.requireAdmin(c); err != nil {
		return err
	}
	if a.opts.Scans == nil || !a.opts.Scans.Enabled() {
		return errNotScanning
	}
	err := a.opts.Scans.QueueUpdate(c.ctx())
	a.audited(c, "vulndb.update", "", "", err)
	if err != nil {
		return err
	}
	return respond(c, http.StatusAccepted, JobQueued{Queued: "vulndb_update"})
}

// scanAll queues a scan of every stored image (administrators), as
// Harbor's "scan all".
func (a *API) scanAll(c *call) error {
	if err := a.requireAdmin(c); err != nil {
		return err
	}
	if a.opts.Scans == nil || !a.opts.Scans.Enabled() {
		return errNotScanning
	}
	err := a.opts.Scans.QueueScanAll(c.ctx())
	a.audited(c, "scan.all", "", "", err)
	if err != nil {
		return err
	}
	return respond(c, http.StatusAccepted, JobQueued{Queued: "scan_all"})
}
