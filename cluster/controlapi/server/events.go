package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/cluster/store"
)

var eventKinds = map[string][]store.Kind{
	controlapi.EventService: {store.KindService},
	controlapi.EventTask:    {store.KindTask},
	controlapi.EventNode:    {store.KindNode},
	controlapi.EventSync:    {store.KindSyncRecord},
}

// Watcher is what the event stream needs of the store beyond Store.
type Watcher interface {
	Watch(kinds ...store.Kind) (*store.Watcher, error)
}

// events streams what changes in the cluster as NDJSON, one Event a
// line, until the client goes away: with since, first the objects
// changed since then (their latest state, Replayed), then every change
// as it is committed. A client too slow for the stream gets a "gap"
// event and the stream goes on from the current state.
func (s *server) events(w http.ResponseWriter, r *http.Request) {
	wt, ok := s.st.(Watcher)
	if !ok {
		http.Error(w, `{"error":"this node has no event stream"}`, http.StatusServiceUnavailable)
		return
	}
	types, err := eventTypes(r.URL.Query().Get("type"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	var since time.Time
	if v := r.URL.Query().Get("since"); v != "" {
		if since, err = parseSince(v, s.now()); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	var kinds []store.Kind
	for _, t := range types {
		kinds = append(kinds, eventKinds[t]...)
	}
	watch, err := wt.Watch(kinds...)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	defer func() {
		if watch != nil { // nil when a watch after a gap failed
			watch.Close()
		}
	}()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	enc := json.NewEncoder(w)
	send := func(e controlapi.Event) bool {
		if err := enc.Encode(e); err != nil {
			return false
		}
		if flusher != nil {
			flusher.Flush()
		}
		return true
	}
	if !since.IsZero() {
		replay, err := s.replay(types, since)
		if err != nil {
			send(controlapi.Event{Time: s.now(), Type: "error", Message: err.Error()})
			return
		}
		for _, e := range replay {
			if !send(e) {
				return
			}
		}
	}
	if flusher != nil {
		flusher.Flush() // the client knows the stream is up
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case ev, ok := <-watch.Events():
			if !ok {
				if !send(controlapi.Event{Time: s.now(), Type: "gap", Message: fmt.Sprintf("events were lost (%v): the stream goes on from now", watch.Err())}) {
					return
				}
				if watch, err = wt.Watch(kinds...); err != nil {
					return
				}
				continue
			}
			obj, err := ev.Object()
			if err != nil {
				continue
			}
			if e, ok := toEvent(ev.Action, obj, s.now()); ok && !send(e) {
				return
			}
		}
	}
}

func eventTypes(v string) ([]string, error) {
	if v == "" {
		return []string{controlapi.EventService, controlapi.EventTask, controlapi.EventNode, controlapi.EventSync}, nil
	}
	var out []string
	for t := range strings.SplitSeq(v, ",") {
		if _, ok := eventKinds[t]; !ok {
			return nil, fmt.Errorf("event type %q: want service, task, node or sync", t)
		}
		out = append(out, t)
	}
	return out, nil
}

// parseSince reads a duration before now ("10m") or a time (RFC 3339).
func parseSince(v string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(v); err == nil {
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("since %q: give a duration (10m) or a time (2006-01-02T15:04:05Z)", v)
	}
	return t, nil
}

// replay is the objects of types changed since then, oldest first.
func (s *server) replay(types []string, since time.Time) ([]controlapi.Event, error) {
	var out []controlapi.Event
	err := s.st.View(func(tx store.ReadTx) error {
		add := func(o api.Object) {
			if e, ok := toEvent(store.ActionUpdate, o, time.Time{}); ok && !e.Time.Before(since) {
				e.Replayed = true
				out = append(out, e)
			}
		}
		for _, t := range types {
			switch t {
			case controlapi.EventService:
				xs, err := store.Find[api.Service](tx, store.All())
				if err != nil {
					return err
				}
				for _, x := range xs {
					add(x)
				}
			case controlapi.EventTask:
				xs, err := store.Find[api.Task](tx, store.All())
				if err != nil {
					return err
				}
				for _, x := range xs {
					add(x)
				}
			case controlapi.EventNode:
				xs, err := store.Find[api.Node](tx, store.All())
				if err != nil {
					return err
				}
				for _, x := range xs {
					add(x)
				}
			case controlapi.EventSync:
				xs, err := store.Find[api.SyncRecord](tx, store.All())
				if err != nil {
					return err
				}
				for _, x := range xs {
					add(x)
				}
			}
		}
		return nil
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out, err
}

// toEvent describes a change; at is when it was seen (the object's own
// time when zero).
func toEvent(a store.Action, o api.Object, at time.Time) (controlapi.Event, bool) {
	m := o.GetMeta()
	e := controlapi.Event{Time: m.UpdatedAt, ID: m.ID, Action: actionName(a)}
	switch x := o.(type) {
	case *api.Service:
		e.Type, e.Name = controlapi.EventService, x.Spec.Name
		if x.Update != nil && x.Update.State != api.UpdateNone {
			e.State, e.Message = x.Update.State.String(), x.Update.Message
		}
	case *api.Task:
		e.Type, e.Name = controlapi.EventTask, taskName(x, "")
		e.Service, e.Node, e.Desired = x.ServiceName, x.NodeID, x.DesiredState.String()
		e.State, e.Message = x.Status.State.String(), x.Status.Message
		if x.Status.Err != "" {
			e.Message = x.Status.Err
		}
	case *api.Node:
		e.Type, e.Name = controlapi.EventNode, x.Spec.Name
		if e.Name == "" {
			e.Name = x.Description.Hostname
		}
		e.State, e.Message = x.Status.State.String(), x.Status.Message
		if x.Removed() {
			e.State = "removed"
		}
	case *api.SyncRecord:
		e.Type, e.Name, e.Revision, e.Trigger = controlapi.EventSync, x.Revision, x.Revision, x.Trigger.String()
		e.State, e.Message = x.Result.String(), x.Message
		e.Action = "started"
		if !x.FinishedAt.IsZero() {
			e.Action = "finished"
		}
	default:
		return controlapi.Event{}, false
	}
	if !at.IsZero() && (e.Time.IsZero() || e.Type == controlapi.EventSync) {
		e.Time = at
	}
	return e, true
}

func actionName(a store.Action) string {
	switch a {
	case store.ActionCreate:
		return "create"
	case store.ActionDelete:
		return "delete"
	}
	return "update"
}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(controlapi.Error{Error: msg})
}
