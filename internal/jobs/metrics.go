package jobs

import (
	"context"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	prom "berth.dev/berth/internal/metrics"
)

// queueMetrics are the queue's Prometheus series: depth by queue and
// state, and every attempt's outcome and duration by kind.
type queueMetrics struct {
	depth    *prom.GaugeVec
	attempts *prom.CounterVec
	run      *prom.HistogramVec
	wait     *prom.HistogramVec
}

func newQueueMetrics(reg *prom.Registry) *queueMetrics {
	buckets := []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900}
	return &queueMetrics{
		depth: reg.NewGaugeVec("berth_jobs",
			"Background jobs by queue and state (available, scheduled, running, retryable, completed, discarded, cancelled).",
			"queue", "state"),
		attempts: reg.NewCounterVec("berth_job_attempts_total",
			"Finished attempts of background jobs, by kind and outcome (completed, failed, cancelled, snoozed).",
			"kind", "outcome"),
		run: reg.NewHistogramVec("berth_job_duration_seconds",
			"Time background jobs ran, by kind and outcome.", buckets, "kind", "outcome"),
		wait: reg.NewHistogramVec("berth_job_wait_seconds",
			"Time background jobs waited in the queue before they ran, by kind.", buckets, "kind"),
	}
}

func (m *queueMetrics) follow(events <-chan *river.Event) {
	for ev := range events {
		if ev == nil || ev.Job == nil {
			continue
		}
		outcome := "completed"
		switch ev.Kind {
		case river.EventKindJobFailed:
			outcome = "failed"
		case river.EventKindJobCancelled:
			outcome = "cancelled"
		case river.EventKindJobSnoozed:
			outcome = "snoozed"
		}
		m.attempts.WithLabelValues(ev.Job.Kind, outcome).Inc()
		if ev.JobStats != nil {
			m.run.WithLabelValues(ev.Job.Kind, outcome).Observe(ev.JobStats.RunDuration.Seconds())
			m.wait.WithLabelValues(ev.Job.Kind).Observe(ev.JobStats.QueueWaitDuration.Seconds())
		}
	}
}

// sampleDepth refreshes the depth gauges every few seconds until Stop.
func (q *Queue) sampleDepth() {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		q.sampleDepthOnce()
		select {
		case <-q.done:
			return
		case <-t.C:
		}
	}
}

var allStates = []rivertype.JobState{
	rivertype.JobStateAvailable, rivertype.JobStateScheduled, rivertype.JobStateRunning,
	rivertype.JobStateRetryable, rivertype.JobStateCompleted, rivertype.JobStateDiscarded,
	rivertype.JobStateCancelled, rivertype.JobStatePending,
}

func (q *Queue) sampleDepthOnce() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	counts, err := q.Counts(ctx)
	if err != nil {
		return
	}
	for _, queue := range []string{QueueScan, QueueRematch, QueueDeliver, QueueMaintenance} {
		for _, st := range allStates {
			q.metrics.depth.WithLabelValues(queue, string(st)).Set(float64(counts[queue][st]))
		}
	}
}
