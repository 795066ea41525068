// ferry dashboard: live updates over server-sent events. Plain JS, no
// framework; every page works without it, this only keeps it current.
"use strict";
(function () {
  const $ = (sel, el) => (el || document).querySelector(sel);
  const live = $("#live");
  const setLive = (on) => { if (live) live.classList.toggle("on", on); };

  async function fragment(url) {
    const r = await fetch(url, { headers: { "X-Ferry-Fragment": "1" }, credentials: "same-origin" });
    if (!r.ok) throw new Error(url + ": " + r.status);
    return r.text();
  }
  function rowFrom(html) {
    const t = document.createElement("tbody");
    t.innerHTML = html.trim();
    return t.firstElementChild;
  }
  // The page says where in the event stream it was rendered: the stream
  // starts there, so nothing that changed meanwhile is missed.
  function watch(url, handlers) {
    const since = document.body.dataset.since;
    if (since) url += (url.includes("?") ? "&" : "?") + "since=" + encodeURIComponent(since);
    const es = new EventSource(url);
    es.onopen = () => setLive(true);
    es.onerror = () => setLive(false);
    for (const [name, fn] of Object.entries(handlers)) es.addEventListener(name, fn);
    es.addEventListener("resync", () => location.reload());
    return es;
  }
  const terminal = new Set(["succeeded", "failed", "cancelled", "timeout", "out_of_memory", "node_fail", "preempted", "lost"]);
  const groups = {
    active: (s) => !terminal.has(s),
    failed: (s) => ["failed", "timeout", "out_of_memory", "node_fail", "lost"].includes(s),
  };

  // Login: "ferry login" prints a link whose #fragment holds the user and
  // token; the fragment never reaches a server log. Fill the form, send it.
  const form = $("#login-form");
  if (form && location.hash.length > 1) {
    const p = new URLSearchParams(location.hash.slice(1));
    history.replaceState(null, "", location.pathname + location.search);
    if (p.get("user") && p.get("token")) {
      $("#login-user").value = p.get("user");
      $("#login-token").value = p.get("token");
      form.submit();
    }
  }

  // Jobs list: replace a row when its job changes; add new jobs on top of
  // the first page when they match the filters.
  const jobs = $("#jobs[data-live=jobs]");
  if (jobs) {
    const d = jobs.dataset;
    watch("/events", {
      state: async (ev) => {
        const e = JSON.parse(ev.data);
        const row = document.getElementById("job-" + e.id);
        const matches = (!d.user || e.user === d.user) && (!d.project || e.project === d.project) &&
          (!d.state || (groups[d.state] ? groups[d.state](e.state) : e.state === d.state));
        if (!row && (d.first !== "1" || !matches)) return;
        try {
          const html = await fragment("/jobs/" + encodeURIComponent(e.id) + "/row");
          const fresh = rowFrom(html);
          const cur = document.getElementById("job-" + e.id);
          if (cur) cur.replaceWith(fresh);
          else {
            const empty = $("tbody tr.empty", jobs);
            if (empty) empty.remove();
            $("tbody", jobs).prepend(fresh);
          }
        } catch (err) { /* the next event retries */ }
      },
      removed: (ev) => {
        const e = JSON.parse(ev.data);
        const row = document.getElementById("job-" + e.id);
        if (row) row.remove();
      },
    });
  }

  // A job: its state, timeline and reason; its log from a byte offset.
  const jobEl = $("#job[data-live=job]");
  if (jobEl) {
    const id = jobEl.dataset.id;
    let refreshAfterEnd = null;
    watch("/events?job=" + encodeURIComponent(id), {
      state: async (ev) => {
        const e = JSON.parse(ev.data);
        try { $("#summary").innerHTML = await fragment("/jobs/" + encodeURIComponent(id) + "/summary"); } catch (err) { return; }
        if (terminal.has(e.state) && !refreshAfterEnd) {
          // Outputs and final metrics land as the job ends: fetch them once.
          refreshAfterEnd = setTimeout(async () => {
            try {
              const doc = new DOMParser().parseFromString(await fragment(location.pathname), "text/html");
              for (const sel of ["#metrics", "#outputs"]) {
                const a = $(sel), b = $(sel, doc);
                if (a && b) a.replaceWith(b);
              }
            } catch (err) { /* leave the page as it is */ }
          }, 1500);
        }
      },
    });
    // Metrics grow while the job runs, with no event of their own: re-read
    // them every 10 s until it ends.
    const metricsTimer = setInterval(async () => {
      const sum = $("#summary .summary");
      if (sum && terminal.has(sum.dataset.state)) { clearInterval(metricsTimer); return; }
      try {
        const doc = new DOMParser().parseFromString(await fragment(location.pathname), "text/html");
        const a = $("#metrics"), b = $("#metrics", doc);
        if (a && b) a.replaceWith(b);
      } catch (err) { /* the next tick retries */ }
    }, 10000);
    const log = $("#log");
    if (log) {
      const status = $("#log-status");
      const es = new EventSource("/jobs/" + encodeURIComponent(id) + "/log/stream?offset=" + log.dataset.next);
      es.addEventListener("log", (ev) => {
        const stick = log.scrollTop + log.clientHeight >= log.scrollHeight - 20;
        log.append(ev.data + "\n");
        log.dataset.next = ev.lastEventId;
        if (stick) log.scrollTop = log.scrollHeight;
        if (status) status.textContent = "";
      });
      es.addEventListener("reset", () => { log.textContent = ""; });
      es.addEventListener("end", (ev) => {
        es.close();
        if (status) status.textContent = "The job ended (" + ev.data + "); this is the whole log.";
      });
    }
  }

  // Nodes: a job starting or ending changes what a node runs (an event);
  // a node's own state (drained, down) comes with the tracker's sinfo, so
  // the table is also re-read every 10 s.
  const nodes = $("#nodes[data-live=nodes]");
  if (nodes) {
    let timer = null;
    const refresh = async () => {
      try {
        const doc = new DOMParser().parseFromString(await fragment(location.pathname), "text/html");
        const fresh = $("#nodes tbody", doc);
        if (fresh) $("tbody", nodes).replaceWith(fresh);
      } catch (err) { /* the next tick retries */ }
    };
    watch("/events", { state: () => { clearTimeout(timer); timer = setTimeout(refresh, 500); } });
    setInterval(refresh, 10000);
  }

  // A sweep: reload the table (keeping the sort) when one of its tasks changes.
  const sweep = $("#sweep[data-live=sweep]");
  if (sweep) {
    let timer = null;
    const user = sweep.dataset.user;
    watch("/events", {
      state: (ev) => {
        const e = JSON.parse(ev.data);
        if (user && e.user !== user) return;
        clearTimeout(timer);
        timer = setTimeout(async () => {
          try { $("#sweep-table").innerHTML = await fragment(sweep.dataset.table + location.search); } catch (err) { /* retry on the next event */ }
        }, 500);
      },
    });
  }
})();
