package api

import (
	"errors"
	"net/http"
	"strconv"

	"berth.dev/berth/internal/auth"
	"berth.dev/berth/internal/webhook"
)

// Webhooks are managed by the project's administrators (and system
// administrators): a hook can reach any address the server can, and its
// deliveries describe every push.

// hookProject checks the caller may manage the path's project's webhooks
// and returns the project.
func (a *API) hookProject(c *call) (auth.Project, error) {
	project, err := a.projectAction(c, auth.ManageProject)
	if err != nil {
		return auth.Project{}, err
	}
	if a.opts.Webhooks == nil {
		return auth.Project{}, errNoAccounts
	}
	return a.opts.Auth.Project(project)
}

// hookOf resolves the path's webhook in the path's project.
func (a *API) hookOf(c *call) (auth.Project, webhook.Hook, error) {
	p, err := a.hookProject(c)
	if err != nil {
		return p, webhook.Hook{}, err
	}
	id, err := strconv.ParseInt(c.r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return p, webhook.Hook{}, notFound("webhook " + c.r.PathValue("id"))
	}
	h, err := a.opts.Webhooks.Get(c.ctx(), p.ID, id)
	if errors.Is(err, webhook.ErrNotFound) {
		return p, h, notFound("webhook " + c.r.PathValue("id"))
	}
	return p, h, err
}

func webhookError(err error) error {
	switch {
	case errors.Is(err, webhook.ErrInvalid):
		return badRequest("%v", err)
	case errors.Is(err, webhook.ErrExists):
		return &apiError{status: http.StatusConflict, code: "CONFLICT", message: err.Error()}
	case errors.Is(err, webhook.ErrPending):
		return &apiError{status: http.StatusConflict, code: "CONFLICT", message: err.Error()}
	case errors.Is(err, webhook.ErrNotFound):
		return notFound("delivery")
	}
	return err
}

func (a *API) listWebhooks(c *call) error {
	p, err := a.hookProject(c)
	if err != nil {
		return err
	}
	hooks, err := a.opts.Webhooks.List(c.ctx(), p.ID)
	if err != nil {
		return err
	}
	if hooks == nil {
		hooks = []webhook.Hook{}
	}
	return respond(c, http.StatusOK, hooks)
}

func (a *API) createWebhook(c *call) error {
	p, err := a.hookProject(c)
	if err != nil {
		return err
	}
	var n webhook.NewHook
	if err := decode(c, &n); err != nil {
		return err
	}
	n.ProjectID, n.Project, n.CreatedBy = p.ID, p.Name, c.actor()
	if a.opts.Deliveries != nil {
		// Refused here rather than only at delivery: the admin learns now.
		if err := a.opts.Deliveries.CheckReceiver(n.URL); err != nil {
			a.audited(c, "webhook.create", p.Name, webhook.RedactURL(n.URL), err)
			return webhookError(err)
		}
	}
	h, err := a.opts.Webhooks.Create(c.ctx(), n)
	a.audited(c, "webhook.create", p.Name, webhook.RedactURL(n.URL), err)
	if err != nil {
		return webhookError(err)
	}
	return respond(c, http.StatusCreated, h)
}

func (a *API) getWebhook(c *call) error {
	_, h, err := a.hookOf(c)
	if err != nil {
		return err
	}
	return respond(c, http.StatusOK, h)
}

func (a *API) deleteWebhook(c *call) error {
	p, h, err := a.hookOf(c)
	if err == nil {
		err = a.opts.Webhooks.Delete(c.ctx(), p.ID, h.ID)
	}
	a.audited(c, "webhook.delete", p.Name, webhook.RedactURL(h.URL), err)
	if err != nil {
		return err
	}
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}

// page reads ?before=&limit= for the delivery log and dead letters.
func page(c *call) (webhook.Page, error) {
	var p webhook.Page
	q := c.r.URL.Query()
	if v := q.Get("before"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return p, badRequest("before %q: want an id", v)
		}
		p.Before = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > webhook.MaxPageSize {
			return p, badRequest("limit %q: want 1 to %d", v, webhook.MaxPageSize)
		}
		p.Limit = n
	}
	return p, nil
}

func (a *API) webhookDeliveries(c *call) error {
	_, h, err := a.hookOf(c)
	if err != nil {
		return err
	}
	pg, err := page(c)
	if err != nil {
		return err
	}
	out, err := a.opts.Webhooks.Attempts(c.ctx(), h.ID, pg)
	if err != nil {
		return err
	}
	if out == nil {
		out = []webhook.Attempt{}
	}
	return respond(c, http.StatusOK, out)
}

func (a *API) webhookDeadLetters(c *call) error {
	_, h, err := a.hookOf(c)
	if err != nil {
		return err
	}
	pg, err := page(c)
	if err != nil {
		return err
	}
	out, err := a.opts.Webhooks.DeadLetters(c.ctx(), h.ID, pg)
	if err != nil {
		return err
	}
	if out == nil {
		out = []webhook.DeadLetter{}
	}
	return respond(c, http.StatusOK, out)
}

// Redelivered answers a redelivery: the new delivery's id.
type Redelivered struct {
	DeliveryID string `json:"delivery_id"`
}

func (a *API) redeliverWebhook(c *call) error {
	p, h, err := a.hookOf(c)
	if err != nil {
		return err
	}
	delivery := c.r.PathValue("delivery")
	dl, err := a.opts.Webhooks.DeadLetter(c.ctx(), delivery)
	if err != nil || dl.HookID != h.ID {
		return notFound("dead letter " + delivery)
	}
	id, err := a.opts.Deliveries.Redeliver(c.ctx(), p.ID, delivery)
	a.audited(c, "webhook.redeliver", p.Name, delivery, err)
	if err != nil {
		return webhookError(err)
	}
	return respond(c, http.StatusAccepted, Redelivered{DeliveryID: id})
}
