"""A synthetic m365mon history for checking the dashboards' PromQL against a real Prometheus.

`scripts/check-dashboards --promql` backfills this history into a temporary TSDB (promtool tsdb
create-blocks-from openmetrics), starts Prometheus on it and runs every dashboard query at END.
VALUE_CHECKS and VARIABLE_CHECKS then assert what the queries must return for the scenario below;
the expected numbers are worked out by hand from the scenario, not computed by the same PromQL.

Scenario: one sample a minute (scrape interval 60s), one probe run a minute, minute index m from
-60 to 360; the report range is the last 6 hours, m = 0 .. 360 (END = m 360).

  contoso   auth ok; exchange fails (http_5xx) for m 120..129; sharepoint fails once (timeout) at m 200
  fabrikam  auth fails (credential_expired) from m 300 to the end; exchange throttled m 60..89; sharepoint ok
  tailspin  auth ok; exchange fails (timeout) m -30..19, i.e. already failing when the range begins;
            sharepoint ok; tailspin has no admins

Failure counters appear on a reason's first failure, already at 1, exactly as m365mon exports them.
Microsoft reports Exchange Online degraded (one incident) for contoso and fabrikam from m 340.

Newer metrics: tailspin signs in with a delegated credential whose sign-in is rejected from m 330
(reauth required); the partner's GDAP relationship with contoso ends 20 days after END, with
fabrikam 400 days after; contoso has a message center (3 posts, next action 5 days after END) and
a mail round-trip probe that delivers a message every 2 minutes in 4 s, and loses one
(not_delivered) at m 350; partner discovery "partner" is failing from m 300 (recording rule).
"""

import time

STEP = 60
FIRST_MINUTE = -60
LAST_MINUTE = 360
RANGE = "6h"
RANGE_S = 6 * 3600
# A whole hour so that 1-minute subquery steps fall on the samples.
END = int(time.time()) // 3600 * 3600
T0 = END - LAST_MINUTE * STEP

JOB = {"job": "m365mon", "instance": "m365mon:10365"}
SUBSCRIPTIONS = {
    "contoso": {"tenant_id": "11111111-1111-1111-1111-111111111111", "credential": "contoso-cert",
                "admins": ["alice@example.com", "ops+noc@example.com"]},
    "fabrikam": {"tenant_id": "22222222-2222-2222-2222-222222222222", "credential": "shared-secret",
                 "admins": ["bob@example.com", "ops+noc@example.com"]},
    "tailspin": {"tenant_id": "33333333-3333-3333-3333-333333333333", "credential": "shared-secret", "admins": []},
}
PROBES = ("auth", "exchange", "sharepoint")
BUCKETS = ("0.25", "0.5", "1", "5", "+Inf")


def outcome(sub, probe, m):
    """'ok', 'throttled' or the failure reason of the run at minute m."""
    if sub == "contoso" and probe == "exchange" and 120 <= m < 130:
        return "http_5xx"
    if sub == "contoso" and probe == "sharepoint" and m == 200:
        return "timeout"
    if sub == "fabrikam" and probe == "auth" and m >= 300:
        return "credential_expired"
    if sub == "fabrikam" and probe == "exchange" and 60 <= m < 90:
        return "throttled"
    if sub == "tailspin" and probe == "exchange" and -30 <= m < 20:
        return "timeout"
    return "ok"


def ts(m):
    return T0 + m * STEP


def _labels(**kv):
    kv = {**JOB, **kv}
    return "{" + ",".join(f'{k}="{v}"' for k, v in kv.items()) + "}"


def openmetrics():
    """The scenario as OpenMetrics text, grouped by metric name, each series in time order."""
    series = {}  # (name, labels) -> [(t, value)]

    def put(name, labels, m, value):
        series.setdefault((name, labels), []).append((ts(m), value))

    for sub, info in SUBSCRIPTIONS.items():
        for m in range(FIRST_MINUTE, LAST_MINUTE + 1):
            put("m365mon_subscription_info", _labels(subscription=sub, tenant_id=info["tenant_id"], cloud="global",
                                                      credential=info["credential"]), m, 1)
            for admin in info["admins"]:
                put("m365mon_subscription_admin_info", _labels(subscription=sub, admin=admin), m, 1)
        for probe in PROBES:
            runs = throttled = 0
            failures = {}
            success = last_success = last_reason = None
            buckets = dict.fromkeys(BUCKETS, 0)
            duration_sum = 0.0
            for m in range(FIRST_MINUTE, LAST_MINUTE + 1):
                result = outcome(sub, probe, m)
                if result == "throttled":
                    throttled += 1
                else:
                    runs += 1
                    seconds = 0.3 if result == "ok" else 4.0
                    duration_sum += seconds
                    for le in BUCKETS:
                        if le == "+Inf" or seconds <= float(le):
                            buckets[le] += 1
                    if result == "ok":
                        success, last_success, last_reason = 1, m, None
                    else:
                        success, last_reason = 0, result
                        failures[result] = failures.get(result, 0) + 1
                sp = dict(subscription=sub, probe=probe)
                put("m365mon_probe_runs_total", _labels(**sp), m, runs)
                put("m365mon_probe_throttled_total", _labels(**sp), m, throttled)
                for reason, n in failures.items():
                    put("m365mon_probe_failures_total", _labels(**sp, reason=reason), m, n)
                if success is not None:
                    put("m365mon_probe_success", _labels(**sp), m, success)
                put("m365mon_probe_last_run_timestamp_seconds", _labels(**sp), m, ts(m))
                if last_success is not None:
                    put("m365mon_probe_last_success_timestamp_seconds", _labels(**sp), m, ts(last_success))
                if last_reason is not None:
                    put("m365mon_probe_last_failure_reason", _labels(**sp, reason=last_reason), m, 1)
                for le in BUCKETS:
                    put("m365mon_probe_duration_seconds_bucket", _labels(**sp, le=le), m, buckets[le])
                put("m365mon_probe_duration_seconds_sum", _labels(**sp), m, round(duration_sum, 3))
                put("m365mon_probe_duration_seconds_count", _labels(**sp), m, runs)
                # Recording rules the dashboards read (alerting/); constant values are enough here.
                for window in ("1h", "1d", "30d"):
                    put(f"subscription_probe:m365mon_probe_availability:ratio_rate{window}",
                        f'{{subscription="{sub}",probe="{probe}"}}', m, 0.999 if success == 1 else 0.98)
        token_failures = 0
        for m in range(FIRST_MINUTE, LAST_MINUTE + 1):
            put("m365mon_token_requests_total", _labels(subscription=sub), m, m - FIRST_MINUTE + 1)
            if outcome(sub, "auth", m) != "ok":
                token_failures += 1
            if token_failures:
                put("m365mon_token_request_failures_total", _labels(subscription=sub, reason="credential_expired"), m,
                    token_failures)
            degraded = sub in ("contoso", "fabrikam") and m >= 340
            for service in ("Exchange Online", "Microsoft Teams"):
                bad = degraded and service == "Exchange Online"
                status = "serviceDegradation" if bad else "serviceOperational"
                put("m365mon_service_health_status", _labels(subscription=sub, service_name=service, status=status), m, 1)
                put("m365mon_service_operational", _labels(subscription=sub, service_name=service), m, 0 if bad else 1)
                put("m365mon_service_issues_active",
                    _labels(subscription=sub, service_name=service, classification="incident"), m, 1 if bad else 0)
                put("m365mon_service_issues_active",
                    _labels(subscription=sub, service_name=service, classification="advisory"), m, 0)
    for m in range(FIRST_MINUTE, LAST_MINUTE + 1):
        put("m365mon_credential_expiry_timestamp_seconds", _labels(credential="contoso-cert"), m, END + 10 * 86400)
        for probe in PROBES:
            failing = sum(1 for sub in SUBSCRIPTIONS if outcome(sub, probe, m) not in ("ok", "throttled"))
            put("probe:m365mon_subscriptions_failing:ratio", f'{{probe="{probe}"}}', m,
                round(failing / len(SUBSCRIPTIONS), 6))

    mail = dict(subscription="contoso", probe="mail_roundtrip")
    delivered = lost = 0
    for m in range(FIRST_MINUTE, LAST_MINUTE + 1):
        put("m365mon_credential_reauth_required", _labels(subscription="tailspin"), m, 1 if m >= 330 else 0)
        put("m365mon_relationship_expiry_timestamp_seconds", _labels(subscription="contoso"), m, END + 20 * 86400)
        put("m365mon_relationship_expiry_timestamp_seconds", _labels(subscription="fabrikam"), m, END + 400 * 86400)
        for category in ("preventOrFixIssue", "planForChange", "stayInformed"):
            for severity in ("normal", "high", "critical"):
                n = {("planForChange", "normal"): 2, ("preventOrFixIssue", "high"): 1}.get((category, severity), 0)
                put("m365mon_message_center_posts",
                    _labels(subscription="contoso", category=category, severity=severity), m, n)
        put("m365mon_message_center_next_action_timestamp_seconds", _labels(subscription="contoso"), m,
            END + 5 * 86400)
        if m % 2 == 0 and m != 350:
            delivered += 1
        if m == 350:
            lost += 1
        for le in ("1", "5", "30", "+Inf"):
            put("m365mon_mail_delivery_seconds_bucket", _labels(**mail, le=le), m, 0 if le == "1" else delivered)
        put("m365mon_mail_delivery_seconds_sum", _labels(**mail), m, 4 * delivered)
        put("m365mon_mail_delivery_seconds_count", _labels(**mail), m, delivered)
        if lost:
            put("m365mon_probe_failures_total", _labels(**mail, reason="not_delivered"), m, lost)
        if m >= 300:
            put("discovery:m365mon_discovery:failing", '{discovery="partner"}', m, 1)

    lines = []
    for (name, labels), samples in sorted(series.items()):
        lines.extend(f"{name}{labels} {v} {t}" for t, v in samples)
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def _rows(values, **fixed):
    """{(subscription, probe): value} -> {frozenset(labels): value}"""
    return {frozenset({"subscription": s, "probe": p, **fixed}.items()): v for (s, p), v in values.items()}


def _all_pairs(default, **special):
    out = {(s, p): default for s in SUBSCRIPTIONS for p in PROBES}
    for key, value in special.items():
        s, p = key.split("__")
        out[(s, p)] = value
    return out


REPORT = "m365mon-availability"
TABLE = "Availability per subscription and probe"
REPORT_VARS = {"__range": RANGE, "__range_s": str(RANGE_S), "subscription": ".*", "probe": ".*", "admin": ".*"}



def check(dashboard, panel, ref, variables, expected, tolerance, at_minute=LAST_MINUTE):
    """The query `ref` of `panel`, with `variables` filled in and evaluated at `at_minute`, returns
    exactly the label sets of `expected`, each within `tolerance` of its value."""
    return {"dashboard": dashboard, "panel": panel, "ref": ref, "vars": variables, "expected": expected,
            "tolerance": tolerance, "time": ts(at_minute)}


# Expected values follow Prometheus 2.x (the Debian package), whose range selectors include the sample at
# the range start. One run is 1/360 = 0.0028 of availability, so tolerances stay well below that.
VALUE_CHECKS = [
    # Run availability: 1 - failed runs / completed runs in the range. Throttled runs are neither.
    check(REPORT, TABLE, "A", REPORT_VARS, _rows(_all_pairs(
        1.0,
        contoso__exchange=1 - 10 / 360,      # failure series born inside the range: all 10 count
        contoso__sharepoint=1 - 1 / 360,     # a single failure of a new reason still counts
        fabrikam__auth=1 - 61 / 360,         # m 300..360
        fabrikam__exchange=1.0,              # 30 throttled runs, no failure series at all
        tailspin__exchange=1 - 19 / 360,     # failures before the range do not count
    )), 0.0005),
    # Time availability: share of samples whose last completed run succeeded (361 samples).
    check(REPORT, TABLE, "B", REPORT_VARS, _rows(_all_pairs(
        1.0,
        contoso__exchange=1 - 10 / 361,
        contoso__sharepoint=1 - 1 / 361,
        fabrikam__auth=1 - 61 / 361,
        tailspin__exchange=1 - 20 / 361,
    )), 0.0005),
    # Minutes lost.
    check(REPORT, TABLE, "C", REPORT_VARS, _rows(_all_pairs(
        0, contoso__exchange=10, contoso__sharepoint=1, fabrikam__auth=61, tailspin__exchange=20)), 1),
    # Outages: begun in the range, plus one going on when it began.
    check(REPORT, TABLE, "D", REPORT_VARS, _rows(_all_pairs(
        0, contoso__exchange=1, contoso__sharepoint=1, fabrikam__auth=1, tailspin__exchange=1)), 0),
    # Completed runs (throttled ones excluded).
    check(REPORT, TABLE, "E", REPORT_VARS, _rows(_all_pairs(360, fabrikam__exchange=330)), 1),
    # Throttled runs.
    check(REPORT, TABLE, "F", REPORT_VARS, _rows(_all_pairs(0, fabrikam__exchange=30)), 0.5),
    # Service credit tier of the time availability: <99.9 % 25, <99 % 50, <95 % 100.
    check(REPORT, "Selected range", "B", REPORT_VARS, _rows(_all_pairs(
        0, contoso__exchange=50, contoso__sharepoint=25, fabrikam__auth=100, tailspin__exchange=100)), 0),
    check(REPORT, "Downtime a 99.9 % level allows", "A", REPORT_VARS, {frozenset(): 0.36}, 0.001),
    # Fleet: the status grid's source and "failing now".
    check("m365mon-fleet", "Status grid", "A", {"subscription": ".*", "probe": ".*"},
     _rows(_all_pairs(1, fabrikam__auth=0)), 0),
    check("m365mon-fleet", "Failing now", "A", {"subscription": ".*", "probe": ".*"},
     {frozenset({"subscription": "fabrikam", "probe": "auth", "reason": "credential_expired"}.items()): 1}, 0),
    check("m365mon-fleet", "Failing now", "B", {"subscription": ".*", "probe": ".*"},
     {frozenset({"subscription": "fabrikam", "probe": "auth"}.items()): 61 * 60}, 0),
    check("m365mon-fleet", "Subscriptions with a failing probe", "A", {"subscription": ".*", "probe": ".*"},
     {frozenset(): 1}, 0),
    check("m365mon-fleet", "Microsoft: services not operational", "A", {"subscription": ".*"}, {frozenset(): 1}, 0),
    check("m365mon-fleet", "Microsoft: active incidents", "A", {"subscription": ".*"}, {frozenset(): 1}, 0),
    check("m365mon-fleet", "Services not operational", "A", {"subscription": ".*"},
     {frozenset({"service_name": "Exchange Online", "status": "serviceDegradation"}.items()): 2}, 0),
    # Detail: the certificate of contoso's credential expires in 10 days; fabrikam has a secret.
    check("m365mon-subscription", "Certificate expires in", "A", {"subscription": "contoso"},
     {frozenset({"credential": "contoso-cert"}.items()): 10 * 86400}, 0),
    check("m365mon-subscription", "Certificate expires in", "A", {"subscription": "fabrikam"}, {}, 0),
    check("m365mon-subscription", "Sign-in failing because", "A", {"subscription": "fabrikam", "signin_probe": "auth"},
     {frozenset({"reason": "credential_expired"}.items()): 1}, 0),
    check("m365mon-subscription", "Tenant and admins", "A", {"subscription": "contoso"}, {
        frozenset({"tenant_id": SUBSCRIPTIONS["contoso"]["tenant_id"], "cloud": "global", "credential": "contoso-cert",
                   "admin": a}.items()): 1 for a in SUBSCRIPTIONS["contoso"]["admins"]}, 0),
    check("m365mon-subscription", "Tenant and admins", "A", {"subscription": "tailspin"}, {
        frozenset({"tenant_id": SUBSCRIPTIONS["tailspin"]["tenant_id"], "cloud": "global",
                   "credential": "shared-secret"}.items()): 1}, 0),
    # Needs attention: tailspin's delegated sign-in, contoso's GDAP relationship (20 days), discovery.
    check("m365mon-fleet", "Needs attention", "A", {"subscription": ".*"},
     {frozenset({"subscription": "tailspin",
                 "issue": "delegated sign-in: run m365mon login --subscription tailspin"}.items()): 1}, 0),
    check("m365mon-fleet", "Needs attention", "B", {"subscription": ".*"},
     {frozenset({"subscription": "contoso", "issue": "GDAP relationship ends"}.items()): 20 * 86400}, 0),
    check("m365mon-fleet", "Needs attention", "C", {"subscription": ".*"},
     {frozenset({"subscription": "discovery partner", "issue": "partner discovery failing"}.items()): 1}, 0),
    check("m365mon-subscription", "Delegated sign-in", "A", {"subscription": "tailspin"}, {frozenset(): 1}, 0),
    check("m365mon-subscription", "Delegated sign-in", "A", {"subscription": "contoso"}, {}, 0),
    check("m365mon-subscription", "Message center: next action by", "A", {"subscription": "contoso"},
     {frozenset(): (END + 5 * 86400) * 1000}, 0),
    check("m365mon-subscription", "Message center posts", "A", {"subscription": "contoso"},
     {frozenset({"category": "planForChange", "severity": "normal"}.items()): 2,
      frozenset({"category": "preventOrFixIssue", "severity": "high"}.items()): 1}, 0),
    # Every delivery took 4 s (bucket 1..5 s): p50 interpolates to 3 s.
    check("m365mon-subscription", "Mail delivery time", "A",
     {"subscription": "contoso", "probe": ".*", "__rate_interval": "10m"},
     {frozenset({"probe": "mail_roundtrip"}.items()): 3.0}, 0.001),
    # The message lost at m 350 counts, although its failure series is born then.
    check("m365mon-subscription", "Mail delivered and lost", "B",
     {"subscription": "contoso", "probe": ".*", "__rate_interval": "15m"},
     {frozenset({"probe": "mail_roundtrip"}.items()): 1}, 0),
    # A reason's first failure shows in "Failures by reason" (the series is born at 1).
    check("m365mon-subscription", "Failures by reason", "A",
     {"subscription": "contoso", "probe": "sharepoint", "__rate_interval": "5m"},
     {frozenset({"reason": "timeout"}.items()): 1}, 0, at_minute=202),
]

# The admin and subscription dropdowns: (user e-mail, expected options [(value, text)] in order).
ADMIN_OPTIONS = [
    ("alice@example.com", [("alice@example.com", "alice@example.com (you)"), (".*", "All subscriptions"),
                           ("bob@example.com", "bob@example.com"), ("ops.noc@example.com", "ops+noc@example.com")]),
    ("ops+noc@example.com", [("ops.noc@example.com", "ops+noc@example.com (you)"), (".*", "All subscriptions"),
                             ("alice@example.com", "alice@example.com"), ("bob@example.com", "bob@example.com")]),
    # Not an admin of anything: still the default, so the dashboards show nothing rather than everything.
    ("Carol@Example.com", [("Carol@Example.com", "Carol@Example.com (you)"), (".*", "All subscriptions"),
                           ("alice@example.com", "alice@example.com"), ("bob@example.com", "bob@example.com"),
                           ("ops.noc@example.com", "ops+noc@example.com")]),
    # No e-mail (anonymous access): "All subscriptions" comes first.
    ("", [(".*", "All subscriptions"), ("alice@example.com", "alice@example.com"),
          ("bob@example.com", "bob@example.com"), ("ops.noc@example.com", "ops+noc@example.com")]),
]
# (admin variable value, expected subscriptions)
SUBSCRIPTION_OPTIONS = [
    ("alice@example.com", ["contoso"]),
    ("ALICE@example.com", ["contoso"]),  # case-insensitive: Grafana e-mails keep their case
    ("ops.noc@example.com", ["contoso", "fabrikam"]),  # the `+` of ops+noc turned into `.`
    (".*", ["contoso", "fabrikam", "tailspin"]),  # All: tailspin has no admins and still shows
    ("carol@example.com", []),
]
