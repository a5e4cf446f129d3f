#!/usr/bin/env python3
"""Generates the m365mon Grafana dashboards: dashboards/m365mon-*.json.

The JSON files are committed; this script is their source. Edit it, then run

    python3 dashboards/generate.py          # rewrite the JSON files
    python3 dashboards/generate.py --check  # fail if a JSON file is out of date

and `scripts/check-dashboards` to validate the result. Python 3 standard library only.
"""

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

# Every panel, target, variable and annotation uses the `datasource` variable.
DS = {"type": "prometheus", "uid": "${datasource}"}
SCHEMA_VERSION = 39  # Grafana 10.4 / 11.0; newer Grafana migrates it on load.
TAG = "m365mon"
UIDS = {
    "fleet": "m365mon-fleet",
    "subscription": "m365mon-subscription",
    "availability": "m365mon-availability",
}

# Label selectors, filled in by Grafana from the variables.
SUB = 'subscription=~"$subscription"'
SUB_PROBE = 'subscription=~"$subscription", probe=~"$probe"'

OK_FAIL = [
    {
        "type": "value",
        "options": {
            "0": {"text": "FAIL", "color": "red", "index": 0},
            "1": {"text": "OK", "color": "green", "index": 1},
        },
    },
    {"type": "special", "options": {"match": "null", "result": {"text": "-", "index": 2}}},
]
OPERATIONAL = [
    {
        "type": "value",
        "options": {
            "0": {"text": "not operational", "color": "orange", "index": 0},
            "1": {"text": "operational", "color": "green", "index": 1},
        },
    }
]


def thresholds(*steps):
    """steps: (color, value) pairs, the first value None (base)."""
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for c, v in steps]}


AVAILABILITY_STEPS = thresholds(("red", None), ("orange", 0.95), ("yellow", 0.99), ("green", 0.999))


# ---------------------------------------------------------------------------
# PromQL building blocks
# ---------------------------------------------------------------------------


def lazy_counter_increase(metric, selector, window, by):
    """Increase over `window` of a counter whose series appear on their first event.

    m365mon_probe_failures_total{reason} and m365mon_token_request_failures_total{reason}
    are created by the first failure of that reason, already at 1. increase() cannot see
    that first step (there is no earlier sample at 0), so a single failure of a new reason
    would vanish. Series that existed when the window began use increase(); series born
    inside the window count with their whole value, which they gained inside the window.
    """
    series = f"{metric}{{{selector}}}"
    inner = f"(increase({series}[{window}]) and {series} offset {window})\n  or ({series} unless {series} offset {window})"
    agg = f"sum by ({by})" if by else "sum"
    return f"{agg} (\n  {inner}\n)"


def probe_state(selector=SUB_PROBE, offset=""):
    """1/0 per (subscription, probe): the result of the last completed run."""
    off = f" offset {offset}" if offset else ""
    return f"min by (subscription, probe) (m365mon_probe_success{{{selector}}}{off})"


def failed_in_range(selector=SUB_PROBE):
    """(subscription, probe) pairs whose last result was a failure at some time in the
    dashboard's range. `@ end()` makes the filter the same at every step of a range query."""
    return (
        f"{probe_state(selector)}\n"
        f"and on(subscription, probe) (min by (subscription, probe) "
        f"(min_over_time(m365mon_probe_success{{{selector}}}[$__range] @ end())) == 0)"
    )


# Availability report (see dashboards/README.md, "Availability report").
RUNS_IN_RANGE = f"sum by (subscription, probe) (increase(m365mon_probe_runs_total{{{SUB_PROBE}}}[$__range]))"
FAILURES_IN_RANGE = lazy_counter_increase("m365mon_probe_failures_total", SUB_PROBE, "$__range", "subscription, probe")
RUN_AVAILABILITY = (
    f"clamp(\n  1 - (\n  {FAILURES_IN_RANGE}\n  or 0 * {RUNS_IN_RANGE}\n  )\n"
    f"  / ({RUNS_IN_RANGE} > 0),\n  0, 1\n)"
)
TIME_AVAILABILITY = f"min by (subscription, probe) (avg_over_time(m365mon_probe_success{{{SUB_PROBE}}}[$__range]))"
MINUTES_LOST = f"sum_over_time(({probe_state()} == bool 0)[$__range:1m])"
OUTAGES_STARTED = f"sum_over_time((({probe_state()} == bool 0) * ({probe_state(offset='1m')} == bool 1))[$__range:1m])"
OUTAGES = f"{OUTAGES_STARTED}\n+ (({probe_state(offset='$__range')} == bool 0) or 0 * {OUTAGES_STARTED})"
THROTTLED_IN_RANGE = f"sum by (subscription, probe) (increase(m365mon_probe_throttled_total{{{SUB_PROBE}}}[$__range]))"


def service_credit(availability):
    """Microsoft Online Services SLA tiers: < 99.9 % -> 25 %, < 99 % -> 50 %, < 95 % -> 100 %."""
    a = f"({availability})"
    return f"({a} < bool 0.999) * 25 + ({a} < bool 0.99) * 25 + ({a} < bool 0.95) * 50"


# ---------------------------------------------------------------------------
# Variables
# ---------------------------------------------------------------------------


def datasource_var():
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "regex": "",
        "current": {},
        "hide": 0,
        "includeAll": False,
        "multi": False,
        "options": [],
        "refresh": 1,
        "description": "The Prometheus that scrapes m365mon (and evaluates the m365mon recording rules).",
    }


def query_var(name, label, query, description, multi=False, include_all=False, all_value=None, regex="", sort=1, hide=0):
    v = {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "definition": query,
        "query": {"qryType": 3 if query.startswith("query_result(") else 1, "query": query,
                  "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "regex": regex,
        "refresh": 2,
        "sort": sort,
        "multi": multi,
        "includeAll": include_all,
        "current": {},
        "options": [],
        "hide": hide,
        "skipUrlSync": False,
        "description": description,
    }
    if all_value is not None:
        v["allValue"] = all_value
    return v


# The admin dropdown: the logged-in user's e-mail first (the default, since Grafana picks the
# first option when nothing is selected), then "All subscriptions", then every admin.
# Its value goes into `admin=~"(?i)$admin"`; "All" is the regex `.*`. A `+` in an address
# (sub-addressing) is turned into `.` in the value so that the regex still matches it.
_ME = 'label_replace(label_replace(vector(1), "admin", "${__user.email}", "", ""), "text", "$1 (you)", "admin", "(.+)")'
_ALL = 'label_replace(label_replace(vector(1), "admin", ".*", "", ""), "text", "All subscriptions", "", "")'
_ADMINS = 'label_replace(max by (admin) (m365mon_subscription_admin_info), "text", "$1", "admin", "(.*)")'


def _plus_to_dot(expr):
    for _ in range(2):
        expr = f'label_replace({expr}, "admin", "$1.$2", "admin", "(.*)[+](.*)")'
    return expr


ADMIN_QUERY = f"query_result({_plus_to_dot(_ME)} or {_ALL} or {_plus_to_dot(f'({_ADMINS} unless on(admin) {_ME})')})"
ADMIN_REGEX = '/admin="(?<value>[^"]*)",text="(?<text>[^"]*)"/'
# Subscriptions of the chosen admin. With "All" (admin=~".*") the selector also matches
# m365mon_subscription_info, which has no admin label, so subscriptions without admins show too.
SUBSCRIPTION_QUERY = (
    'label_values({__name__=~"m365mon_subscription_info|m365mon_subscription_admin_info", admin=~"(?i)$admin"}, subscription)'
)


def admin_var():
    return query_var(
        "admin",
        "Admin",
        ADMIN_QUERY,
        "Whose subscriptions to show. Defaults to you (your Grafana e-mail); 'All subscriptions' for operators. "
        "A convenience filter, not access control.",
        regex=ADMIN_REGEX,
        sort=0,
    )


def subscription_var(multi):
    return query_var(
        "subscription",
        "Subscription",
        SUBSCRIPTION_QUERY,
        "Subscriptions (tenants) owned by the chosen admin." if multi else "The subscription (tenant) to show.",
        multi=multi,
        include_all=multi,
    )


def probe_var():
    return query_var(
        "probe",
        "Probe",
        f"label_values(m365mon_probe_runs_total{{{SUB}}}, probe)",
        "Probes (auth, organization, exchange, sharepoint, onedrive, teams, service_health or your own names).",
        multi=True,
        include_all=True,
        all_value=".*",
    )


def signin_probe_var():
    return {
        "name": "signin_probe",
        "label": "Sign-in probe",
        "type": "custom",
        "query": "auth",
        "current": {"text": "auth", "value": "auth"},
        "options": [{"text": "auth", "value": "auth", "selected": True}],
        "hide": 2,
        "multi": False,
        "includeAll": False,
        "skipUrlSync": False,
        "description": "Name of the sign-in probe (its `name:` in m365mon.yml, `auth` by default). "
        "Change it here or with ?var-signin_probe=NAME.",
    }


# ---------------------------------------------------------------------------
# Panels
# ---------------------------------------------------------------------------


def target(expr, legend="", ref="A", instant=False, table=False, interval=""):
    t = {"datasource": DS, "editorMode": "code", "expr": expr, "refId": ref, "range": not instant, "instant": instant}
    if legend:
        t["legendFormat"] = legend
    if table:
        t["format"] = "table"
    if interval:
        t["interval"] = interval
    return t


def detail_link(value="${__value.raw}"):
    return [
        {
            "title": "Subscription detail",
            "url": "/d/" + UIDS["subscription"] + "/m365mon-subscription?${datasource:queryparam}&${admin:queryparam}"
            f"&var-subscription={value}&${{__url_time_range}}",
        }
    ]


_OVERRIDE_IDS = {"cell": "custom.cellOptions", "align": "custom.align"}


def override(name, **props):
    """A field override by field name; `cell="color-text"` sets the table cell type."""
    properties = []
    for key, value in props.items():
        if key == "cell":
            value = {"type": value}
        properties.append({"id": _OVERRIDE_IDS.get(key, key), "value": value})
    return {"matcher": {"id": "byName", "options": name}, "properties": properties}


def panel(kind, title, description, targets, unit, *, mappings=None, steps=None, custom=None, options=None,
          overrides=None, transformations=None, decimals=None, minv=None, maxv=None, no_value=None, links=None,
          **extra):
    defaults = {"unit": unit, "mappings": mappings or [], "thresholds": steps or thresholds(("green", None))}
    # Time series keep the palette (one colour per series); other panels colour by thresholds/mappings.
    defaults["color"] = {"mode": "palette-classic" if kind == "timeseries" else "thresholds"}
    if links:
        defaults["links"] = links
    if custom is not None:
        defaults["custom"] = custom
    if decimals is not None:
        defaults["decimals"] = decimals
    if minv is not None:
        defaults["min"] = minv
    if maxv is not None:
        defaults["max"] = maxv
    if no_value is not None:
        defaults["noValue"] = no_value
    p = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
        "options": options or {},
    }
    if transformations:
        p["transformations"] = transformations
    p.update(extra)
    return p


def stat(title, description, targets, unit, *, text_mode="auto", color_mode="value", **kw):
    options = {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "colorMode": color_mode,
        "graphMode": "none",
        "justifyMode": "auto",
        "orientation": "auto",
        "textMode": text_mode,
    }
    return panel("stat", title, description, targets, unit, options=options, **kw)


def timeseries(title, description, targets, unit, *, bars=False, stack=False, threshold_style="off", legend="list",
               legend_calcs=("max", "lastNotNull"), **kw):
    custom = {
        "drawStyle": "bars" if bars else "line",
        "lineWidth": 1,
        "fillOpacity": 60 if bars else 10,
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"mode": "normal" if stack else "none", "group": "A"},
        "thresholdsStyle": {"mode": threshold_style},
    }
    options = {
        "legend": {"displayMode": legend, "placement": "bottom" if legend == "list" else "right", "showLegend": True,
                   "calcs": [] if legend == "list" else list(legend_calcs)},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    return panel("timeseries", title, description, targets, unit, custom=custom, options=options, **kw)


def state_timeline(title, description, targets, mappings, **kw):
    custom = {"fillOpacity": 80, "lineWidth": 0}
    options = {
        "mergeValues": True,
        "showValue": "never",
        "alignValue": "left",
        "rowHeight": 0.85,
        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": False},
        "tooltip": {"mode": "single", "sort": "none"},
    }
    return panel("state-timeline", title, description, targets, "none", mappings=mappings, custom=custom,
                 options=options, **kw)


def table(title, description, targets, unit, *, hide=("Time",), order=None, sort_by=None, cell="auto", **kw):
    transformations = kw.pop("transformations", None) or []
    if len(targets) > 1:
        transformations = [{"id": "merge", "options": {}}] + transformations
    organize = {"excludeByName": {h: True for h in hide}, "indexByName": {}, "renameByName": {}}
    if order:
        organize["indexByName"] = {name: i for i, name in enumerate(order)}
    transformations.append({"id": "organize", "options": organize})
    options = {"showHeader": True, "cellHeight": "sm", "footer": {"show": False, "reducer": ["sum"], "fields": ""}}
    if sort_by:
        options["sortBy"] = [{"displayName": sort_by[0], "desc": sort_by[1]}]
    custom = {"align": "auto", "cellOptions": {"type": cell}, "filterable": True, "inspect": False}
    return panel("table", title, description, targets, unit, custom=custom, options=options,
                 transformations=transformations, **kw)


def bargauge(title, description, targets, unit, **kw):
    options = {
        "displayMode": "gradient",
        "orientation": "horizontal",
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "showUnfilled": True,
        "valueMode": "color",
        "minVizHeight": 16,
        "minVizWidth": 8,
        "namePlacement": "auto",
        "sizing": "auto",
    }
    return panel("bargauge", title, description, targets, unit, options=options, **kw)


class Layout:
    """Places panels left to right on Grafana's 24-column grid and numbers them."""

    def __init__(self):
        self.panels = []
        self.x = 0
        self.y = 0
        self.h = 0

    def _newline(self):
        if self.x:
            self.y += self.h
            self.x, self.h = 0, 0

    def row(self, title, **extra):
        self._newline()
        self.panels.append({"type": "row", "title": title, "collapsed": False, "panels": [],
                            "gridPos": {"x": 0, "y": self.y, "w": 24, "h": 1}, **extra})
        self.y += 1

    def add(self, p, w, h):
        if self.x + w > 24:
            self._newline()
        p["gridPos"] = {"x": self.x, "y": self.y, "w": w, "h": h}
        self.panels.append(p)
        self.x += w
        self.h = max(self.h, h)

    def done(self):
        for i, p in enumerate(self.panels, start=1):
            p["id"] = i
        return self.panels


def dashboard(key, title, description, panels, variables, *, time_from, time_to="now", refresh="", annotations=()):
    builtin = {
        "builtIn": 1,
        "datasource": {"type": "grafana", "uid": "-- Grafana --"},
        "enable": True,
        "hide": True,
        "iconColor": "rgba(0, 211, 255, 1)",
        "name": "Annotations & Alerts",
        "type": "dashboard",
    }
    return {
        "uid": UIDS[key],
        "title": title,
        "description": description,
        "tags": [TAG],
        "editable": False,
        "graphTooltip": 1,
        "timezone": "browser",
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "time": {"from": time_from, "to": time_to},
        "timepicker": {},
        "refresh": refresh,
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "links": [
            {
                "type": "dashboards",
                "tags": [TAG],
                "asDropdown": False,
                "includeVars": True,
                "keepTime": True,
                "title": "m365mon dashboards",
                "icon": "external link",
                "targetBlank": False,
                "tooltip": "",
                "url": "",
            }
        ],
        "annotations": {"list": [builtin, *annotations]},
        "templating": {"list": variables},
        "panels": panels,
    }


# ---------------------------------------------------------------------------
# 1. Fleet overview
# ---------------------------------------------------------------------------


def fleet():
    L = Layout()
    L.row("Now")
    L.add(stat("Subscriptions", "Subscriptions (tenants) selected by the admin and subscription filters.",
               [target(f"count(max by (subscription) (m365mon_subscription_info{{{SUB}}}))", instant=True)],
               "short"), 4, 4)
    L.add(stat("Subscriptions with a failing probe",
               "Subscriptions where the last completed run of at least one probe failed (throttled runs do not "
               "count).",
               [target(f"count(min by (subscription) (m365mon_probe_success{{{SUB_PROBE}}}) == 0) or vector(0)",
                       instant=True)],
               "short", steps=thresholds(("green", None), ("red", 1))), 4, 4)
    L.add(stat("Failing probes", "Probe x subscription pairs whose last completed run failed.",
               [target(f"count({probe_state()} == 0) or vector(0)", instant=True)],
               "short", steps=thresholds(("green", None), ("red", 1))), 4, 4)
    L.add(stat("Widespread outage: worst probe",
               "The largest share, over all probes, of ALL monitored subscriptions whose last run of that probe "
               "failed (recording rule probe:m365mon_subscriptions_failing:ratio). Fleet-wide on purpose: when "
               "many tenants fail the same probe at once the cause is Microsoft's side, not one tenant.",
               [target(f"max(probe:m365mon_subscriptions_failing:ratio{{probe=~\"$probe\"}})", instant=True)],
               "percentunit", decimals=0, steps=thresholds(("green", None), ("orange", 0.2), ("red", 0.5))), 4, 4)
    L.add(stat("Microsoft: services not operational",
               "Distinct Microsoft 365 services that Microsoft's service health reports as not operational for at "
               "least one of the selected subscriptions.",
               [target(f"count(count by (service_name) (m365mon_service_operational{{{SUB}}} == 0)) or vector(0)",
                       instant=True)],
               "short", steps=thresholds(("green", None), ("orange", 1))), 4, 4)
    L.add(stat("Microsoft: active incidents",
               "Unresolved service-health issues classified as incident, counted per service as the largest "
               "number any selected subscription sees (the same Microsoft incident shows in every affected tenant).",
               [target(f"sum(max by (service_name) (m365mon_service_issues_active{{{SUB}, classification=\"incident\"}}))"
                       " or vector(0)", instant=True)],
               "short", steps=thresholds(("green", None), ("orange", 1))), 4, 4)

    L.row("Status by subscription and probe")
    L.add(table("Status grid",
                "Result of the last completed run, one row per subscription and one column per probe. "
                "'-' means the probe is not configured for that subscription. Click a subscription for its detail.",
                [target(probe_state(), instant=True, table=True)],
                "none",
                mappings=OK_FAIL, cell="color-background", hide=(),
                transformations=[{"id": "groupingToMatrix",
                                  "options": {"columnField": "probe", "rowField": "subscription",
                                              "valueField": "Value", "emptyValue": "null"}}],
                overrides=[override("subscription\\probe", displayName="Subscription", links=detail_link(),
                                    cell="auto", align="left")]), 14, 12)
    L.add(bargauge("Lowest availability, last 24 h",
                   "The ten subscriptions whose worst probe had the lowest share of successful runs in the last "
                   "24 hours (recording rule subscription_probe:m365mon_probe_availability:ratio_rate1d; "
                   "throttled runs are neither successes nor failures).",
                   [target(f"bottomk(10, min by (subscription) "
                           f"(subscription_probe:m365mon_probe_availability:ratio_rate1d{{{SUB_PROBE}}}))",
                           legend="{{subscription}}", instant=True)],
                   "percentunit", decimals=2, minv=0.9, maxv=1, steps=AVAILABILITY_STEPS,
                   links=detail_link("${__field.labels.subscription}")), 10, 12)
    L.add(state_timeline("Failures in this time range",
                         "Every subscription x probe that failed at some time in the selected range, with its "
                         "results over time (OK/FAIL of the last completed run).",
                         [target(failed_in_range(), legend="{{subscription}} / {{probe}}")],
                         OK_FAIL), 24, 10)

    L.row("Failing now, and why")
    L.add(table("Failing now",
                "Probes whose last completed run failed: the failure reason reported by m365mon, how long since "
                "the probe last succeeded (empty: never since m365mon started) and since its last run.",
                [target(f"max by (subscription, probe, reason) (m365mon_probe_last_failure_reason{{{SUB_PROBE}}} == 1)",
                        ref="A", instant=True, table=True),
                 target(f"(time() - max by (subscription, probe) (m365mon_probe_last_success_timestamp_seconds{{{SUB_PROBE}}}))"
                        f"\nand on(subscription, probe) ({probe_state()} == 0)", ref="B", instant=True, table=True),
                 target(f"(time() - max by (subscription, probe) (m365mon_probe_last_run_timestamp_seconds{{{SUB_PROBE}}}))"
                        f"\nand on(subscription, probe) ({probe_state()} == 0)", ref="C", instant=True, table=True)],
                "s",
                hide=("Time", "Value #A"),
                order=["subscription", "probe", "reason", "Value #B", "Value #C"],
                sort_by=("Last success", True),
                overrides=[override("subscription", displayName="Subscription", links=detail_link()),
                           override("probe", displayName="Probe"),
                           override("reason", displayName="Reason"),
                           override("Value #B", displayName="Last success"),
                           override("Value #C", displayName="Last run")]), 24, 8)

    L.row("Needs attention")
    L.add(table("Needs attention",
                "Things that need a person before they become outages: delegated sign-ins that must be renewed with "
                "`m365mon login` (the command is in the row), the partner's GDAP relationships that end within 30 "
                "days (time left), and partner discovery entries that cannot read the customer list (recording rule "
                "discovery:m365mon_discovery:failing; not filtered by admin, a discovery belongs to no subscription). "
                "Empty when nothing needs attention.",
                [target(f'label_replace(max by (subscription) (m365mon_credential_reauth_required{{{SUB}}}) == 1,\n'
                        f'  "issue", "delegated sign-in: run m365mon login --subscription $1", "subscription", "(.*)")',
                        ref="A", instant=True, table=True),
                 target(f'label_replace(\n  (max by (subscription) (m365mon_relationship_expiry_timestamp_seconds{{{SUB}}}) - time())'
                        f' < 30 * 86400,\n  "issue", "GDAP relationship ends", "", "")',
                        ref="B", instant=True, table=True),
                 target('max by (subscription, issue) (label_replace(label_replace(discovery:m365mon_discovery:failing,\n'
                        '  "subscription", "discovery $1", "discovery", "(.*)"), "issue", "partner discovery failing", "", ""))',
                        ref="C", instant=True, table=True)],
                "s", hide=("Time", "Value #A", "Value #C"), order=["subscription", "issue", "Value #B"],
                sort_by=("Time left", False), no_value="nothing needs attention",
                overrides=[override("subscription", displayName="Subscription / discovery", links=detail_link()),
                           override("issue", displayName="Issue"),
                           override("Value #B", displayName="Time left", decimals=0)]), 24, 6)

    L.row("Widespread outages (all subscriptions)")
    L.add(timeseries("Share of subscriptions failing, by probe",
                     "For each probe, the share of ALL monitored subscriptions (not only the selected ones) whose last "
                     "run of it failed (probe:m365mon_subscriptions_failing:ratio). A high share means Microsoft's "
                     "side; the dashed line is the alerting default (50 %).",
                     [target('probe:m365mon_subscriptions_failing:ratio{probe=~"$probe"}', legend="{{probe}}")],
                     "percentunit", minv=0, maxv=1, threshold_style="dashed",
                     steps=thresholds(("transparent", None), ("red", 0.5))), 16, 8)
    L.add(bargauge("Failing now, by probe",
                   "Current share of all monitored subscriptions whose last run of the probe failed.",
                   [target('probe:m365mon_subscriptions_failing:ratio{probe=~"$probe"}', legend="{{probe}}",
                           instant=True)],
                   "percentunit", minv=0, maxv=1, decimals=0,
                   steps=thresholds(("green", None), ("orange", 0.2), ("red", 0.5))), 8, 8)

    L.row("Microsoft service health")
    L.add(table("Services not operational",
                "Services that Microsoft's service health reports as not operational, with the status it gives and "
                "the number of selected subscriptions that see it.",
                [target(f"count by (service_name, status) (\n  max by (subscription, service_name, status) "
                        f"(m365mon_service_health_status{{{SUB}}})\n  and on(subscription, service_name) "
                        f"(max by (subscription, service_name) (m365mon_service_operational{{{SUB}}}) == 0)\n)",
                        instant=True, table=True)],
                "short", sort_by=("Subscriptions", True),
                overrides=[override("service_name", displayName="Service"),
                           override("status", displayName="Status"),
                           override("Value", displayName="Subscriptions")]), 12, 8)
    L.add(table("Active issues",
                "Unresolved Microsoft service-health issues by service and classification (incident, advisory): the "
                "largest count any selected subscription sees, and how many subscriptions see at least one.",
                [target(f"max by (service_name, classification) (m365mon_service_issues_active{{{SUB}}} > 0)",
                        ref="A", instant=True, table=True),
                 target(f"count by (service_name, classification) (m365mon_service_issues_active{{{SUB}}} > 0)",
                        ref="B", instant=True, table=True)],
                "short", sort_by=("Issues", True),
                overrides=[override("service_name", displayName="Service"),
                           override("classification", displayName="Classification"),
                           override("Value #A", displayName="Issues"),
                           override("Value #B", displayName="Subscriptions")]), 12, 8)
    L.add(timeseries("Subscriptions seeing a service not operational",
                     "For each Microsoft 365 service, how many of the selected subscriptions Microsoft reports it as "
                     "not operational for, over time.",
                     [target(f"count by (service_name) (max by (subscription, service_name) "
                             f"(m365mon_service_operational{{{SUB}}}) == 0)", legend="{{service_name}}")],
                     "short", minv=0, decimals=0), 24, 8)

    return dashboard(
        "fleet",
        "m365mon / Fleet overview",
        "Every subscription the chosen admin manages: status by probe, what is failing and why, widespread "
        "outages and Microsoft's own incidents.",
        L.done(),
        [datasource_var(), admin_var(), subscription_var(multi=True), probe_var()],
        time_from="now-6h",
        refresh="1m",
    )


# ---------------------------------------------------------------------------
# 2. Subscription detail
# ---------------------------------------------------------------------------


def subscription():
    L = Layout()
    L.row("Overview")
    L.add(stat("Probes now", "Result of the last completed run of each probe (throttled runs do not change it).",
               [target(f"min by (probe) (m365mon_probe_success{{{SUB_PROBE}}})", legend="{{probe}}", instant=True)],
               "none", mappings=OK_FAIL, color_mode="background", text_mode="value_and_name"), 12, 5)
    L.add(table("Availability",
                "Share of completed runs that succeeded over the last hour, day and 30 days (recording rules "
                "subscription_probe:m365mon_probe_availability:ratio_rate1h/1d/30d; throttled runs excluded).",
                [target(f"max by (probe) (subscription_probe:m365mon_probe_availability:ratio_rate1h{{{SUB_PROBE}}})", ref="A",
                        instant=True, table=True),
                 target(f"max by (probe) (subscription_probe:m365mon_probe_availability:ratio_rate1d{{{SUB_PROBE}}})", ref="B",
                        instant=True, table=True),
                 target(f"max by (probe) (subscription_probe:m365mon_probe_availability:ratio_rate30d{{{SUB_PROBE}}})", ref="C",
                        instant=True, table=True)],
                "percentunit", decimals=3, steps=AVAILABILITY_STEPS, cell="color-text",
                order=["probe", "Value #A", "Value #B", "Value #C"],
                overrides=[override("probe", displayName="Probe"),
                           override("Value #A", displayName="1 hour"),
                           override("Value #B", displayName="1 day"),
                           override("Value #C", displayName="30 days")]), 6, 5)
    L.add(table("Tenant and admins",
                "The subscription's tenant, cloud, credential (from m365mon.yml) and the admins who are notified.",
                [target(f"max by (tenant_id, cloud, credential, admin) (\n  m365mon_subscription_admin_info{{{SUB}}}\n"
                        f"  * on(subscription) group_left(tenant_id, cloud, credential)\n"
                        f"  max by (subscription, tenant_id, cloud, credential) (m365mon_subscription_info{{{SUB}}})\n)\n"
                        f"or (max by (tenant_id, cloud, credential) (m365mon_subscription_info{{{SUB}}})\n"
                        f"  unless on() m365mon_subscription_admin_info{{{SUB}}})", instant=True, table=True)],
                "none", hide=("Time", "Value"), order=["tenant_id", "cloud", "credential", "admin"],
                overrides=[override("tenant_id", displayName="Tenant ID"),
                           override("cloud", displayName="Cloud"),
                           override("credential", displayName="Credential"),
                           override("admin", displayName="Admin")]), 6, 5)

    one = 'subscription=~"$subscription", probe=~"$probe"'
    L.row("Probe: $probe", repeat="probe")
    L.add(state_timeline("Result", "OK/FAIL of the last completed run of this probe over time.",
                         [target(f"min by (probe) (m365mon_probe_success{{{one}}})", legend="{{probe}}")],
                         OK_FAIL), 24, 3)
    L.add(timeseries("Latency percentiles",
                     "Duration of completed runs (sign-in included), 50th/90th/99th percentile from the "
                     "m365mon_probe_duration_seconds histogram. Minimum step 5m: probes run about once a minute, so "
                     "shorter windows hold too few runs for a percentile.",
                     [target(f"histogram_quantile({q}, sum by (le) (rate(m365mon_probe_duration_seconds_bucket{{{one}}}"
                             f"[$__rate_interval])))", legend=f"p{int(q * 100)}", ref=r)
                      for q, r in ((0.5, "A"), (0.9, "B"), (0.99, "C"))],
                     "s", minv=0, interval="5m"), 8, 8)
    L.add(timeseries("Failures by reason",
                     "Failed runs per interval by reason (timeout, http_5xx, unauthorized, ...). A reason's first "
                     "failure is counted too, although its series only appears then.",
                     [target(lazy_counter_increase("m365mon_probe_failures_total", one, "$__rate_interval", "reason"),
                             legend="{{reason}}")],
                     "short", bars=True, stack=True, minv=0, decimals=0), 8, 8)
    L.add(timeseries("Runs and throttling",
                     "Completed runs and throttled runs (429, or 503 with Retry-After) per interval. Throttled runs "
                     "are neither successes nor failures.",
                     [target(f"sum(increase(m365mon_probe_runs_total{{{one}}}[$__rate_interval]))", legend="completed",
                             ref="A"),
                      target(f"sum(increase(m365mon_probe_throttled_total{{{one}}}[$__rate_interval]))",
                             legend="throttled", ref="B")],
                     "short", minv=0, decimals=0,
                     overrides=[override("throttled", color={"mode": "fixed", "fixedColor": "orange"})]), 8, 8)

    signin = 'subscription=~"$subscription", probe="$signin_probe"'
    L.row("Sign-in (Entra ID)")
    L.add(state_timeline("Sign-in probe", "OK/FAIL of the sign-in probe (a token request to Entra ID) over time.",
                         [target(f"min by (probe) (m365mon_probe_success{{{signin}}})", legend="{{probe}}")],
                         OK_FAIL), 12, 4)
    L.add(stat("Sign-in failing because",
               "The reason of the sign-in probe's last failure while it is failing: credential_expired (rotate the "
               "secret or certificate), not_consented (grant admin consent), tenant_not_found, credential_invalid, "
               "... Empty when sign-in works.",
               [target(f"max by (reason) (m365mon_probe_last_failure_reason{{{signin}}})", legend="{{reason}}",
                       instant=True)],
               "none", text_mode="name", color_mode="background", no_value="signing in works",
               steps=thresholds(("red", None))), 6, 4)
    L.add(stat("Certificate expires in",
               "Time left until the certificate of this subscription's credential expires. Empty for client secrets "
               "and federated credentials (m365mon cannot see their expiry).",
               [target("(max by (credential) (m365mon_credential_expiry_timestamp_seconds) - time())\n"
                       f"and on(credential) max by (credential) (m365mon_subscription_info{{{SUB}}})",
                       legend="{{credential}}", instant=True)],
               "s", no_value="not a certificate",
               steps=thresholds(("red", None), ("orange", 14 * 86400), ("green", 30 * 86400))), 6, 4)
    L.add(timeseries("Token requests",
                     "Token requests to Entra ID and failed ones by reason, per interval.",
                     [target(f"sum(increase(m365mon_token_requests_total{{{SUB}}}[$__rate_interval]))",
                             legend="requests", ref="A"),
                      target(lazy_counter_increase("m365mon_token_request_failures_total", SUB, "$__rate_interval",
                                                   "reason"), legend="failed: {{reason}}", ref="B")],
                     "short", minv=0, decimals=0), 24, 7)

    L.row("Microsoft service health")
    L.add(state_timeline("Service status",
                         "Whether Microsoft reports each service as operational for this tenant, over time.",
                         [target(f"max by (service_name) (m365mon_service_operational{{{SUB}}})",
                                 legend="{{service_name}}")],
                         OPERATIONAL), 12, 9)
    L.add(table("Current status", "Each service's current status as Microsoft's service health gives it.",
                [target(f"max by (service_name, status) (m365mon_service_health_status{{{SUB}}})", instant=True,
                        table=True)],
                "none", hide=("Time", "Value"), sort_by=("Status", False),
                overrides=[override("service_name", displayName="Service"),
                           override("status", displayName="Status",
                                    mappings=[{"type": "value", "options": {
                                        "serviceOperational": {"color": "green", "index": 0}}},
                                              {"type": "regex", "options": {
                                                  "pattern": ".*", "result": {"color": "orange", "index": 1}}}],
                                    cell="color-text")]), 6, 9)
    L.add(table("Active issues", "Unresolved service-health issues by service and classification.",
                [target(f"max by (service_name, classification) (m365mon_service_issues_active{{{SUB}}} > 0)",
                        instant=True, table=True)],
                "short", sort_by=("Issues", True),
                overrides=[override("service_name", displayName="Service"),
                           override("classification", displayName="Classification"),
                           override("Value", displayName="Issues")]), 6, 9)

    L.row("Delegated sign-in, GDAP relationship and message center")
    L.add(stat("Delegated sign-in",
               "For a delegated credential (delegated: true, signs in as an account): whether that sign-in works or "
               "must be renewed with `m365mon login --subscription $subscription` (none stored, or Entra ID rejected "
               "the refresh token). Empty for app sign-in (secret, certificate, federated).",
               [target(f"max(m365mon_credential_reauth_required{{{SUB}}})", instant=True)],
               "none", color_mode="background", no_value="app sign-in (not delegated)",
               mappings=[{"type": "value", "options": {
                   "0": {"text": "signed in", "color": "green", "index": 0},
                   "1": {"text": "needs m365mon login", "color": "red", "index": 1}}}]),
          6, 4)
    L.add(stat("GDAP relationship ends in",
               "Time left in the partner's latest GDAP relationship in force with this tenant (read by a discovery: "
               "entry). The alert M365monRelationshipExpiring warns 30 days ahead. Empty when the tenant is no "
               "customer of a configured partner.",
               [target(f"max(m365mon_relationship_expiry_timestamp_seconds{{{SUB}}}) - time()", instant=True)],
               "s", no_value="not a GDAP customer", decimals=0,
               steps=thresholds(("red", None), ("orange", 7 * 86400), ("yellow", 30 * 86400), ("green", 60 * 86400))),
          6, 4)
    L.add(stat("Message center: next action by",
               "The earliest future action-required date of the tenant's message center posts (message_center "
               "probe). Empty when no post asks for action by a future date, or without a message_center probe.",
               [target(f"max(m365mon_message_center_next_action_timestamp_seconds{{{SUB}}}) * 1000", instant=True)],
               "dateTimeAsIso", no_value="no action date ahead"), 6, 4)
    L.add(table("Message center posts",
                "Message center posts listed for the tenant, by category (preventOrFixIssue, planForChange, "
                "stayInformed) and severity (normal, high, critical); categories and severities without posts are "
                "left out.",
                [target(f"sum by (category, severity) (m365mon_message_center_posts{{{SUB}}}) > 0", instant=True,
                        table=True)],
                "short", sort_by=("Posts", True), no_value="no posts (or no message_center probe)",
                overrides=[override("category", displayName="Category"),
                           override("severity", displayName="Severity"),
                           override("Value", displayName="Posts", decimals=0)]), 6, 4)

    mail = f'{SUB}, probe=~"$probe"'
    L.row("Mail round trip")
    L.add(timeseries("Mail delivery time",
                     "Send-to-inbox time of the messages that mail_roundtrip probes delivered: 50th/90th/99th "
                     "percentile per probe from the m365mon_mail_delivery_seconds histogram. Minimum step 15m: the "
                     "probe runs every 5 minutes or less often. Empty without a mail_roundtrip probe. Messages not "
                     "delivered by the probe's timeout are failures (next panel), not slow deliveries.",
                     [target(f"histogram_quantile({q}, sum by (probe, le) (rate(m365mon_mail_delivery_seconds_bucket"
                             f"{{{mail}}}[$__rate_interval])))", legend=f"{{{{probe}}}} p{int(q * 100)}", ref=r)
                      for q, r in ((0.5, "A"), (0.9, "B"), (0.99, "C"))],
                     "s", minv=0, interval="15m", no_value="no mail_roundtrip probe"), 16, 8)
    L.add(timeseries("Mail delivered and lost",
                     "Per mail_roundtrip probe and interval: messages delivered, and runs that failed because "
                     "Exchange refused the message (send_failed) or it was not in the inbox by the timeout "
                     "(not_delivered). Empty without a mail_roundtrip probe.",
                     [target(f"sum by (probe) (increase(m365mon_mail_delivery_seconds_count{{{mail}}}[$__rate_interval]))",
                             legend="{{probe}} delivered", ref="A"),
                      target(lazy_counter_increase("m365mon_probe_failures_total",
                                                   f'{mail}, reason=~"send_failed|not_delivered"',
                                                   "$__rate_interval", "probe")
                             + f"\nor 0 * sum by (probe) (increase(m365mon_mail_delivery_seconds_count{{{mail}}}"
                               "[$__rate_interval]))",
                             legend="{{probe}} not delivered or refused", ref="B")],
                     "short", minv=0, decimals=0, interval="15m", no_value="no mail_roundtrip probe"), 8, 8)

    annotations = [
        {
            "name": "Microsoft incidents",
            "datasource": DS,
            "enable": True,
            "hide": False,
            "iconColor": "orange",
            "expr": f"max by (service_name) (m365mon_service_operational{{{SUB}}}) == 0\n"
            f"or max by (service_name) (m365mon_service_issues_active{{{SUB}, classification=\"incident\"}}) > 0",
            "step": "1m",
            "titleFormat": "Microsoft: {{service_name}}",
            "textFormat": "Service not operational or an open incident",
            "tagKeys": "service_name",
            "useValueForTime": False,
        },
        {
            "name": "Probe outages",
            "datasource": DS,
            "enable": True,
            "hide": False,
            "iconColor": "red",
            "expr": f"min by (probe) (m365mon_probe_success{{{SUB_PROBE}}}) == 0",
            "step": "1m",
            "titleFormat": "{{probe}} failing",
            "textFormat": "The last completed run of the probe failed",
            "tagKeys": "probe",
            "useValueForTime": False,
        },
    ]
    return dashboard(
        "subscription",
        "m365mon / Subscription detail",
        "One subscription (tenant): every probe's results, latency, failure reasons and throttling; sign-in "
        "health; Microsoft's service health. Annotations mark Microsoft incidents and the outages the probes saw.",
        L.done(),
        [datasource_var(), admin_var(), subscription_var(multi=False), probe_var(), signin_probe_var()],
        time_from="now-24h",
        refresh="1m",
        annotations=annotations,
    )


# ---------------------------------------------------------------------------
# 3. Availability report
# ---------------------------------------------------------------------------


def availability():
    L = Layout()
    L.row("Selected time range")
    L.add(table("Availability per subscription and probe",
                "For the selected range. Run availability: share of completed runs that succeeded (throttled runs "
                "excluded). Time availability: share of the time the last completed run was a success. Minutes lost: "
                "minutes with a failed last run (1-minute steps). Outages: failures that began in the range, plus one "
                "already going on when it began.",
                [target(RUN_AVAILABILITY, ref="A", instant=True, table=True),
                 target(TIME_AVAILABILITY, ref="B", instant=True, table=True),
                 target(MINUTES_LOST, ref="C", instant=True, table=True),
                 target(OUTAGES, ref="D", instant=True, table=True),
                 target(RUNS_IN_RANGE, ref="E", instant=True, table=True),
                 target(THROTTLED_IN_RANGE, ref="F", instant=True, table=True)],
                "short",
                order=["subscription", "probe", "Value #A", "Value #B", "Value #C", "Value #D", "Value #E", "Value #F"],
                sort_by=("Time availability", False),
                overrides=[override("subscription", displayName="Subscription", links=detail_link()),
                           override("probe", displayName="Probe"),
                           override("Value #A", displayName="Run availability", unit="percentunit", decimals=3,
                                    thresholds=AVAILABILITY_STEPS, color={"mode": "thresholds"},
                                    cell="color-text"),
                           override("Value #B", displayName="Time availability", unit="percentunit", decimals=3,
                                    thresholds=AVAILABILITY_STEPS, color={"mode": "thresholds"},
                                    cell="color-text"),
                           override("Value #C", displayName="Minutes lost", unit="m", decimals=0),
                           override("Value #D", displayName="Outages", decimals=0),
                           override("Value #E", displayName="Completed runs", decimals=0),
                           override("Value #F", displayName="Throttled runs", decimals=0)]), 24, 10)
    L.add(stat("Minutes lost (all selected)",
               "Sum over the selected subscriptions and probes of the minutes with a failed last run.",
               [target(f"sum({MINUTES_LOST})", instant=True)], "m", decimals=0), 6, 4)
    L.add(stat("Outages (all selected)", "Sum over the selected subscriptions and probes of the outages in the range.",
               [target(f"sum({OUTAGES})", instant=True)], "short", decimals=0), 6, 4)
    L.add(stat("Downtime a 99.9 % level allows",
               "0.1 % of the selected range, in minutes: 43.2 minutes in a 30-day month.",
               [target("vector($__range_s / 60 * 0.001)", instant=True)], "m", decimals=1), 6, 4)
    L.add(stat("Worst time availability",
               "The lowest time availability of any selected subscription and probe in the range.",
               [target(f"min({TIME_AVAILABILITY})", instant=True)], "percentunit", decimals=3,
               steps=AVAILABILITY_STEPS), 6, 4)

    L.row("Service level 99.9 % and service credit")
    credit_overrides = [
        override("subscription", displayName="Subscription", links=detail_link()),
        override("probe", displayName="Probe"),
        override("Value #A", displayName="Availability", unit="percentunit", decimals=3, thresholds=AVAILABILITY_STEPS,
                 color={"mode": "thresholds"}, cell="color-text"),
        override("Value #B", displayName="Service credit", unit="percent", decimals=0,
                 thresholds=thresholds(("green", None), ("orange", 25), ("red", 50)), color={"mode": "thresholds"},
                 cell="color-text"),
        override("Value #C", displayName="Minutes lost", unit="m", decimals=0),
    ]
    credit_desc = (
        "Time availability against the Microsoft Online Services service level of 99.9 % and the service credit "
        "tier it would fall in (< 99.9 %: 25 %, < 99 %: 50 %, < 95 %: 100 % of the monthly fee). Microsoft "
        "computes the SLA from its own downtime data per service and user minutes; this is evidence for a "
        "claim, not the amount Microsoft will grant. The SLA is monthly: use a calendar month. "
    )
    credit_targets = [target(TIME_AVAILABILITY, ref="A", instant=True, table=True),
                      target(service_credit(TIME_AVAILABILITY), ref="B", instant=True, table=True),
                      target(MINUTES_LOST, ref="C", instant=True, table=True)]
    credit_order = ["subscription", "probe", "Value #A", "Value #B", "Value #C"]
    L.add(table("Selected range", credit_desc + "This table uses the dashboard's range.", credit_targets, "short",
                order=credit_order, sort_by=("Availability", False), overrides=credit_overrides), 8, 10)
    L.add(table("This month so far", credit_desc + "This table always shows the current calendar month so far.",
                credit_targets, "short", order=credit_order, sort_by=("Availability", False),
                overrides=credit_overrides, timeFrom="now/M"), 8, 10)
    L.add(table("Last month", credit_desc + "This table always shows the previous calendar month.",
                credit_targets, "short", order=credit_order, sort_by=("Availability", False),
                overrides=credit_overrides, timeFrom="now/M", timeShift="1M/M"), 8, 10)

    L.row("Outages and minutes lost over time")
    L.add(timeseries("Minutes lost per day",
                     "Minutes with a failed last run, per subscription and day (1-minute steps).",
                     [target(f"sum by (subscription) (sum_over_time(({probe_state()} == bool 0)[$__interval:1m]))",
                             legend="{{subscription}}")],
                     "m", bars=True, stack=True, minv=0, decimals=0, legend="table", legend_calcs=("sum",),
                     interval="1d"), 24, 8)
    L.add(state_timeline("Outage timeline",
                         "Every subscription x probe that failed in the selected range, with its results over time.",
                         [target(failed_in_range(), legend="{{subscription}} / {{probe}}")], OK_FAIL), 24, 10)

    return dashboard(
        "availability",
        "m365mon / Availability report",
        "Availability per subscription and probe for the chosen range, monthly availability against 99.9 % with the "
        "Microsoft Online Services service-credit tier, outages and minutes lost.",
        L.done(),
        [datasource_var(), admin_var(), subscription_var(multi=True), probe_var()],
        time_from="now/M",
    )


DASHBOARDS = {
    "m365mon-fleet.json": fleet,
    "m365mon-subscription.json": subscription,
    "m365mon-availability.json": availability,
}


def render(build):
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main(argv):
    check = "--check" in argv[1:]
    stale = []
    for name, build in DASHBOARDS.items():
        path = HERE / name
        text = render(build)
        if check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    if stale:
        print(f"out of date (run python3 dashboards/generate.py): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
