"""The fatigue guard: caps, cooldowns, quiet hours, opt-out, suppression, the control
group and priority (docs/delivery.md). Pure functions, no I/O besides reading the YAML."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nudge.domain.fatigue import (
    Candidate,
    Cap,
    FatigueConfig,
    FatigueConfigError,
    QuietHours,
    SendWindow,
    Sent,
    UserPrefs,
    Verdict,
    decide,
    in_control_group,
    load_fatigue_config,
    next_allowed,
    order_by_priority,
)

ROOT = Path(__file__).resolve().parents[2]
DEFAULTS = FatigueConfig.default()
NOON = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # daytime in UTC: outside quiet hours
NY = ZoneInfo("America/New_York")
UTC_USER = UserPrefs(timezone="UTC")
NY_USER = UserPrefs(timezone="America/New_York")


def candidate(
    trigger_id: str = "cart_abandonment",
    channel: str = "email",
    *,
    at: datetime = NOON,
    priority: int = 50,
    cooldown_seconds: int | None = 24 * 3600,
    action_id: str | None = None,
    user_id: str = "u1",
) -> Candidate:
    return Candidate(
        action_id=action_id or f"{trigger_id}-{at.isoformat()}",
        user_id=user_id,
        trigger_id=trigger_id,
        channel=channel,  # type: ignore[arg-type]
        priority=priority,
        cooldown_seconds=cooldown_seconds,
        fired_at=at,
    )


def sent(trigger_id: str, channel: str, at: datetime, priority: int = 50) -> Sent:
    return Sent(at=at, channel=channel, trigger_id=trigger_id, priority=priority)


def judge(
    c: Candidate,
    history: list[Sent] | None = None,
    *,
    prefs: UserPrefs = UTC_USER,
    now: datetime | None = None,
    config: FatigueConfig = DEFAULTS,
    competing: tuple[Candidate, ...] = (),
) -> Verdict:
    return decide(
        c,
        history=history or [],
        prefs=prefs,
        now=now or c.fired_at,
        config=config,
        competing=competing,
    )


def ny(
    year: int, month: int, day: int, hour: int, minute: int = 0, second: int = 0, *, fold: int = 0
) -> datetime:
    """A New York wall time as a UTC instant (aware times in a repeated hour never
    compare equal across zones, so tests compare instants)."""
    local = datetime(year, month, day, hour, minute, second, tzinfo=NY, fold=fold)
    return local.astimezone(UTC)


def quiet_hours(start: str, end: str) -> QuietHours:
    return QuietHours.model_validate({"start": start, "end": end})


# ---- configuration ---------------------------------------------------------------------------------
def test_the_shipped_config_holds_the_spec_defaults() -> None:
    config = load_fatigue_config(ROOT / "config" / "fatigue.yaml")

    assert config == DEFAULTS
    assert [c.rule for c in config.caps] == ["cap:global:3/24h", "cap:channel:email:1/24h"]
    assert config.cooldown.seconds_for("any_trigger") == 24 * 3600
    assert (config.quiet_hours.start.hour, config.quiet_hours.end.hour) == (21, 8)
    assert config.quiet_hours.channels == ("email", "sms", "push")
    assert config.control_group_percent == 0
    assert config.priority_window_seconds == 600


def test_a_missing_or_empty_file_gives_the_defaults(tmp_path: Path) -> None:
    (tmp_path / "empty.yaml").write_text("# nothing\n")

    assert load_fatigue_config(tmp_path / "absent.yaml") == DEFAULTS
    assert load_fatigue_config(tmp_path / "empty.yaml") == DEFAULTS


def test_a_file_overrides_only_the_keys_it_gives(tmp_path: Path) -> None:
    path = tmp_path / "fatigue.yaml"
    path.write_text(
        "control_group_percent: 5\n"
        "cooldown: {triggers: {inactivity_winback: 7d}}\n"
        "caps:\n"
        "  - {scope: global, limit: 10, window: 7d}\n"
        "  - {scope: trigger, trigger: repeat_product_view, limit: 2, window: 48h}\n"
    )

    config = load_fatigue_config(path)

    assert config.control_group_percent == 5
    assert config.cooldown.seconds_for("inactivity_winback") == 7 * 86400
    assert config.cooldown.seconds_for("cart_abandonment") == 86400
    assert [c.rule for c in config.caps] == [
        "cap:global:10/7d",
        "cap:trigger:repeat_product_view:2/48h",
    ]
    assert config.quiet_hours == DEFAULTS.quiet_hours


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("caps: [{scope: global, limit: 3, window: 24}]", "caps.0.window: bad duration 24"),
        ("caps: [{scope: channel, limit: 1, window: 24h}]", "caps.0: a channel cap needs"),
        ("caps: [{scope: global, trigger: x, limit: 1, window: 1h}]", "caps.0: `trigger` does"),
        ("caps: [{scope: global, limit: -1, window: 1h}]", "caps.0.limit"),
        ("caps: [{scope: channel, channel: fax, limit: 1, window: 1h}]", "caps.0.channel"),
        ("quiet_hours: {start: 21:00}", "quiet_hours.start: write the time in quotes"),
        ("quiet_hours: {end: '25:00'}", "quiet_hours.end: bad time"),
        ("quiet_hours: {channels: [inapp]}", "quiet_hours: in-app messages are never deferred"),
        ("control_group_percent: 101", "control_group_percent"),
        ("priority_window: soon", "priority_window: bad duration"),
        ("max_per_day: 3", "max_per_day: Extra inputs are not permitted"),
        ("- 3", "expected a mapping"),
        ("caps: [", "not valid YAML"),
    ],
)
def test_an_invalid_config_is_refused_naming_the_field(
    tmp_path: Path, text: str, names: str
) -> None:
    path = tmp_path / "fatigue.yaml"
    path.write_text(text + "\n")

    with pytest.raises(FatigueConfigError) as caught:
        load_fatigue_config(path)

    assert isinstance(caught.value, ValueError)
    assert names in str(caught.value)
    assert str(path) in str(caught.value)


# ---- caps --------------------------------------------------------------------------------------------
def deliver_in_arrival_order(candidates: list[Candidate], prefs: UserPrefs) -> list[Verdict]:
    """Each action decided when it fires, its sends added to the history."""
    history: list[Sent] = []
    verdicts = []
    for c in sorted(candidates, key=lambda c: c.fired_at):
        verdict = judge(c, history, prefs=prefs)
        if verdict.sends:
            history.append(sent(c.trigger_id, c.channel, c.fired_at, c.priority))
        verdicts.append(verdict)
    return verdicts


def test_five_triggers_within_an_hour_give_at_most_three_messages_and_one_email() -> None:
    # given five different triggers set off by one user within an hour
    fired = [
        candidate("cart_abandonment", "email", at=NOON, priority=100),
        candidate("inactivity_winback", "email", at=NOON + timedelta(minutes=10), priority=20),
        candidate("repeat_product_view", "push", at=NOON + timedelta(minutes=20)),
        candidate("product_dwell_upsell", "inapp", at=NOON + timedelta(minutes=30)),
        candidate("price_drop", "sms", at=NOON + timedelta(minutes=50)),
    ]

    verdicts = deliver_in_arrival_order(fired, UTC_USER)

    assert [(v.status, v.reason) for v in verdicts] == [
        ("send", "ok"),
        ("capped", "cap:channel:email:1/24h"),
        ("send", "ok"),
        ("send", "ok"),
        ("capped", "cap:global:3/24h"),
    ]


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=72 * 60),  # minute fired, over three days
            st.sampled_from(["email", "sms", "push", "inapp"]),
            st.integers(min_value=0, max_value=7),  # trigger number
            st.integers(min_value=0, max_value=100),  # priority
        ),
        max_size=30,
    )
)
def test_no_24h_window_ever_holds_more_than_the_caps_allow(
    fires: list[tuple[int, str, int, int]],
) -> None:
    fired = [
        candidate(f"t{n}", ch, at=NOON + timedelta(minutes=m), priority=p, action_id=f"a{i}")
        for i, (m, ch, n, p) in enumerate(fires)
    ]
    history: list[Sent] = []
    for c in sorted(fired, key=lambda c: c.fired_at):
        if judge(c, history).sends:
            history.append(sent(c.trigger_id, c.channel, c.fired_at))

    for first in history:
        window = [s for s in history if first.at <= s.at <= first.at + timedelta(hours=24)]
        assert len(window) <= 3
        assert sum(1 for s in window if s.channel == "email") <= 1


def test_a_send_leaves_the_sliding_window_24h_later() -> None:
    c = candidate("t4", "push")
    three = [sent(f"t{i}", "push", NOON - timedelta(hours=i + 1)) for i in range(2)]

    just_inside = [*three, sent("t9", "sms", NOON - timedelta(hours=24))]
    just_outside = [*three, sent("t9", "sms", NOON - timedelta(hours=24, seconds=1))]

    assert judge(c, just_inside).reason == "cap:global:3/24h"
    assert judge(c, just_outside).sends


def test_a_trigger_cap_counts_only_that_triggers_messages() -> None:
    config = DEFAULTS.model_copy(
        update={"caps": (Cap(scope="trigger", trigger="views", limit=2, window="7d"),)}
    )
    history = [sent("views", "push", NOON - timedelta(days=d)) for d in (2, 5)]

    assert judge(candidate("views", "push"), history, config=config) == Verdict(
        "capped", "cap:trigger:views:2/7d"
    )
    assert judge(candidate("other", "push"), history, config=config).sends


# ---- cooldown ----------------------------------------------------------------------------------------
def test_the_same_trigger_within_its_cooldown_is_capped() -> None:
    history = [sent("cart_abandonment", "inapp", NOON - timedelta(hours=23))]

    assert judge(candidate("cart_abandonment", "push"), history) == Verdict("capped", "cooldown")
    assert judge(candidate("winback", "push"), history).sends


def test_the_cooldown_ends_after_its_duration() -> None:
    history = [sent("cart_abandonment", "email", NOON - timedelta(hours=24, seconds=1))]

    assert judge(candidate("cart_abandonment", "email"), history).sends


def test_the_triggers_own_cooldown_wins_over_the_config() -> None:
    history = [sent("dwell", "inapp", NOON - timedelta(hours=7))]
    config = DEFAULTS.model_copy(
        update={"cooldown": DEFAULTS.cooldown.model_copy(update={"triggers": {"dwell": "2d"}})}
    )

    own_6h = candidate("dwell", "inapp", cooldown_seconds=6 * 3600)
    unset = candidate("dwell", "inapp", cooldown_seconds=None)

    assert judge(own_6h, history, config=config).sends
    assert judge(unset, history, config=config).reason == "cooldown"  # the 2d override
    assert judge(unset, history).reason == "cooldown"  # the 24h default


# ---- quiet hours ---------------------------------------------------------------------------------------
QUIET = DEFAULTS.quiet_hours


def test_a_new_york_user_at_3am_gets_the_email_at_8am_local() -> None:
    at = ny(2026, 3, 2, 3, 0)

    verdict = judge(candidate(at=at), prefs=NY_USER)

    assert verdict == Verdict("deferred", "quiet_hours", defer_until=ny(2026, 3, 2, 8, 0))
    assert verdict.defer_until is not None
    assert verdict.defer_until.astimezone(NY).strftime("%H:%M") == "08:00"


@pytest.mark.parametrize(
    ("local", "allowed"),
    [
        (ny(2026, 3, 2, 7, 59, 30), ny(2026, 3, 2, 8, 0)),  # the next whole minute
        (ny(2026, 3, 2, 21, 0), ny(2026, 3, 3, 8, 0)),  # the start is quiet: next morning
        (ny(2026, 3, 2, 23, 59, 59), ny(2026, 3, 3, 8, 0)),
        (ny(2026, 3, 3, 0, 0), ny(2026, 3, 3, 8, 0)),
        (ny(2026, 3, 2, 8, 0), ny(2026, 3, 2, 8, 0)),  # the end is allowed
        (ny(2026, 3, 2, 20, 59, 59), ny(2026, 3, 2, 20, 59, 59)),
        # clocks go forward (2026-03-08 02:00 -> 03:00): 8:00 EDT is 5.5 h after 1:30 EST
        (ny(2026, 3, 7, 22, 0), ny(2026, 3, 8, 8, 0)),
        (ny(2026, 3, 8, 1, 30), datetime(2026, 3, 8, 12, 0, tzinfo=UTC)),
        # clocks go back (2026-11-01 02:00 -> 01:00): 8:00 EST is 13:00 UTC
        (ny(2026, 10, 31, 23, 0), datetime(2026, 11, 1, 13, 0, tzinfo=UTC)),
        (ny(2026, 11, 1, 1, 30, fold=1), datetime(2026, 11, 1, 13, 0, tzinfo=UTC)),
    ],
)
def test_next_allowed_is_the_next_minute_after_quiet_hours_in_local_time(
    local: datetime, allowed: datetime
) -> None:
    assert next_allowed(local.astimezone(UTC), "America/New_York", QUIET) == allowed


def test_an_end_the_clocks_skip_is_reached_when_they_jump() -> None:
    quiet = quiet_hours("21:00", "02:30")
    # 02:30 does not exist on 2026-03-08 in New York: 01:59 EST is followed by 03:00 EDT
    assert next_allowed(ny(2026, 3, 8, 1, 45), "America/New_York", quiet) == ny(2026, 3, 8, 3, 0)


def test_a_repeated_hour_is_quiet_both_times() -> None:
    quiet = quiet_hours("21:00", "01:30")
    second_pass = ny(2026, 11, 1, 1, 10, fold=1)  # 01:10 EST, after 01:59 EDT

    assert next_allowed(ny(2026, 11, 1, 1, 10), "America/New_York", quiet) == ny(2026, 11, 1, 1, 30)
    assert next_allowed(second_pass, "America/New_York", quiet) == ny(2026, 11, 1, 1, 30, fold=1)


def test_quiet_hours_within_one_day() -> None:
    quiet = quiet_hours("13:00", "14:00")

    assert next_allowed(NOON + timedelta(hours=1, minutes=5), None, quiet) == NOON + timedelta(
        hours=2
    )
    assert next_allowed(NOON + timedelta(hours=2), None, quiet) == NOON + timedelta(hours=2)
    assert next_allowed(NOON, None, quiet) == NOON


@pytest.mark.parametrize("tz", [None, "", "Mars/Olympus_Mons", "../../etc/passwd", "utc"])
def test_an_absent_or_unknown_time_zone_means_utc(tz: str | None) -> None:
    three_am_utc = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)

    assert next_allowed(three_am_utc, tz, QUIET) == datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


ZONES = ["America/New_York", "Europe/London", "Australia/Lord_Howe", "Asia/Kolkata", "UTC"]


@settings(max_examples=100, deadline=None)
@given(
    now=st.datetimes(
        min_value=datetime(2026, 1, 1), max_value=datetime(2027, 1, 1), timezones=st.just(UTC)
    ),
    tz=st.sampled_from(ZONES),
    start=st.integers(min_value=0, max_value=24 * 60 - 1),
    length=st.integers(min_value=1, max_value=23 * 60),
)
def test_next_allowed_is_never_early_and_never_late(
    now: datetime, tz: str, start: int, length: int
) -> None:
    end = (start + length) % (24 * 60)
    quiet = QuietHours(start=time(start // 60, start % 60), end=time(end // 60, end % 60))
    zone = ZoneInfo(tz)

    def is_quiet(at: datetime) -> bool:
        return quiet.covers(at.astimezone(zone).time())

    allowed = next_allowed(now, tz, quiet)

    if not is_quiet(now):
        assert allowed == now
        return
    assert allowed > now
    assert (allowed.second, allowed.microsecond) == (0, 0)
    assert not is_quiet(allowed)
    assert is_quiet(allowed - timedelta(seconds=1))  # not a second later than needed
    steps = int((allowed - now) / timedelta(minutes=20))
    assert all(is_quiet(now + i * timedelta(minutes=20)) for i in range(steps))  # not early


def test_in_app_is_never_deferred() -> None:
    at = ny(2026, 3, 2, 3, 0)

    assert judge(candidate("upsell", "inapp", at=at), prefs=NY_USER).sends
    for channel in ("email", "sms", "push"):
        assert judge(candidate("upsell", channel, at=at), prefs=NY_USER).status == "deferred"


def test_quiet_hours_can_be_turned_off() -> None:
    config = DEFAULTS.model_copy(update={"quiet_hours": QuietHours(channels=())})

    assert judge(candidate(at=ny(2026, 3, 2, 3, 0)), prefs=NY_USER, config=config).sends


# ---- opt-out, suppression ---------------------------------------------------------------------------------
def test_an_opt_out_stops_only_its_channel() -> None:
    prefs = UserPrefs(timezone="UTC", opted_out=frozenset({"email"}))

    assert judge(candidate(channel="email"), prefs=prefs) == Verdict("opted_out", "opted_out:email")
    assert judge(candidate(channel="push"), prefs=prefs).sends


def test_an_opt_out_of_all_stops_every_channel() -> None:
    prefs = UserPrefs(opted_out=frozenset({"all"}))

    for channel in ("email", "sms", "push", "inapp"):
        assert judge(candidate(channel=channel), prefs=prefs) == Verdict(
            "opted_out", "opted_out:all"
        )


def test_a_suppressed_address_gets_nothing_on_that_channel() -> None:
    prefs = UserPrefs(suppressed_channels=frozenset({"email"}))

    assert judge(candidate(channel="email"), prefs=prefs) == Verdict(
        "suppressed", "suppressed:email"
    )
    assert judge(candidate(channel="sms"), prefs=prefs).sends


def test_rules_apply_in_order_control_opt_out_suppression_cooldown_caps_quiet() -> None:
    everything = UserPrefs(
        timezone="America/New_York",
        opted_out=frozenset({"email"}),
        suppressed_channels=frozenset({"email"}),
    )
    c = candidate(at=ny(2026, 3, 2, 3, 0))
    history = [sent(c.trigger_id, "email", c.fired_at - timedelta(hours=1))]
    holdout = DEFAULTS.model_copy(update={"control_group_percent": 100.0})

    assert judge(c, history, prefs=everything, config=holdout).reason == "control_group"
    assert judge(c, history, prefs=everything).reason == "opted_out:email"
    assert judge(c, history, prefs=replace(everything, opted_out=frozenset())).reason == (
        "suppressed:email"
    )
    assert judge(c, history, prefs=NY_USER).reason == "cooldown"
    other = replace(c, trigger_id="winback")
    assert judge(other, history, prefs=NY_USER).reason == "cap:channel:email:1/24h"
    assert judge(other, prefs=NY_USER).reason == "quiet_hours"


# ---- control group ---------------------------------------------------------------------------------------
USER_IDS = [f"user-{i}" for i in range(10_000)]


def test_a_control_group_of_zero_holds_nobody_and_of_100_everybody() -> None:
    assert not any(in_control_group(u, 0) for u in USER_IDS[:2000])
    assert all(in_control_group(u, 100) for u in USER_IDS[:2000])


def test_a_five_percent_control_group_holds_about_five_percent() -> None:
    held = sum(in_control_group(u, 5) for u in USER_IDS)

    assert 400 <= held <= 600


def test_the_control_group_is_stable_across_processes_and_releases() -> None:
    # pinned: a change here would silently reshuffle who is held out and spoil the lift
    held = [u for u in USER_IDS[:200] if in_control_group(u, 5)]

    assert held == PINNED_HOLDOUT
    assert all(in_control_group(u, 5) for u in held)  # the same answer twice


def test_the_control_group_never_receives_a_message() -> None:
    config = DEFAULTS.model_copy(update={"control_group_percent": 5.0})
    held = next(u for u in USER_IDS if in_control_group(u, 5))

    for channel in ("email", "sms", "push", "inapp"):
        c = candidate(channel=channel, user_id=held)
        assert judge(c, config=config) == Verdict("holdout", "control_group")


PINNED_HOLDOUT = [
    "user-32", "user-34", "user-35", "user-53", "user-66",
    "user-90", "user-101", "user-104", "user-135", "user-143",
]  # fmt: skip


# ---- priority --------------------------------------------------------------------------------------------
TWO_SENT = [
    sent("a", "push", NOON - timedelta(hours=2)),
    sent("b", "inapp", NOON - timedelta(hours=1)),
]


def test_the_last_slot_goes_to_the_higher_priority_competitor() -> None:
    low = candidate("upsell", "push", priority=30)
    high = candidate("cart_abandonment", "email", priority=100, at=NOON + timedelta(minutes=5))

    assert judge(low, TWO_SENT, competing=(high,)) == Verdict("capped", "priority")
    assert judge(high, TWO_SENT, now=NOON + timedelta(minutes=5), competing=(low,)).sends


def test_priority_only_matters_for_the_last_slot() -> None:
    low = candidate("upsell", "push", priority=30)
    high = candidate("cart_abandonment", "email", priority=100)

    assert judge(low, TWO_SENT[:1], competing=(high,)).sends


@pytest.mark.parametrize(
    ("rival", "why"),
    [
        (candidate("x", "push", priority=100, at=NOON + timedelta(minutes=11)), "outside window"),
        (candidate("x", "push", priority=10), "lower priority"),
        (candidate("x", "push", priority=100, user_id="u2"), "another user"),
        (candidate("a", "push", priority=100), "in its own cooldown"),
        (candidate("x", "sms", priority=100, action_id="upsell-same"), "the same action"),
    ],
)
def test_a_competitor_wins_the_slot_only_when_it_could_take_it(rival: Candidate, why: str) -> None:
    low = candidate("upsell", "push", priority=30, action_id="upsell-same")

    assert judge(low, TWO_SENT, competing=(rival,)).sends, why


def test_a_competitor_that_would_not_use_the_last_slot_does_not_win_it() -> None:
    # the last email slot is free and global has room: a push competitor wants no email slot
    email = candidate("winback", "email", priority=20)
    push = candidate("views", "push", priority=90)

    assert judge(email, competing=(push,)).sends


def test_an_opted_out_competitor_does_not_win_the_slot() -> None:
    prefs = UserPrefs(timezone="UTC", opted_out=frozenset({"email"}))
    low = candidate("upsell", "push", priority=30)
    high = candidate("cart_abandonment", "email", priority=100)

    assert judge(low, TWO_SENT, prefs=prefs, competing=(high,)).sends


def test_equal_priorities_go_to_the_earlier_fired() -> None:
    first = candidate("p", "push", priority=50, at=NOON - timedelta(minutes=1))
    second = candidate("q", "push", priority=50)

    assert judge(second, TWO_SENT, competing=(first,)).reason == "priority"
    assert judge(first, TWO_SENT, now=NOON, competing=(second,)).sends


def test_order_by_priority() -> None:
    a = candidate("a", priority=10, action_id="a")
    b = candidate("b", priority=90, at=NOON + timedelta(minutes=2), action_id="b")
    c = candidate("c", priority=90, at=NOON + timedelta(minutes=1), action_id="c")
    d = candidate("d", priority=90, at=NOON + timedelta(minutes=1), action_id="d")

    assert order_by_priority([a, d, b, c]) == [c, d, b, a]


# ---- send windows ----------------------------------------------------------------------------------
WEEKDAYS_9_TO_6 = SendWindow.model_validate(
    {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "18:00"}
)


@pytest.mark.parametrize(
    ("now", "opens"),
    [
        (ny(2026, 3, 7, 10), ny(2026, 3, 9, 9)),  # Saturday: Monday 09:00 New York
        (ny(2026, 3, 9, 8, 59), ny(2026, 3, 9, 9)),  # Monday before the opening
        (ny(2026, 3, 9, 12), ny(2026, 3, 9, 12)),  # open: now
        (ny(2026, 3, 9, 18), ny(2026, 3, 10, 9)),  # the end is not in the window
        (ny(2026, 3, 13, 19), ny(2026, 3, 16, 9)),  # Friday evening: Monday
    ],
)
def test_a_send_window_opens_on_its_days_and_hours_in_the_users_time_zone(
    now: datetime, opens: datetime
) -> None:
    assert WEEKDAYS_9_TO_6.next_open(now, "America/New_York") == opens


def test_a_send_window_across_midnight_runs_into_the_next_morning() -> None:
    friday_night = SendWindow.model_validate({"days": ["fri"], "start": "20:00", "end": "02:00"})
    saturday = datetime(2026, 3, 7, 1, 30, tzinfo=UTC)  # 01:30 Saturday, Friday's window
    assert friday_night.next_open(saturday, None) == saturday
    later = datetime(2026, 3, 7, 2, 0, tzinfo=UTC)
    assert friday_night.next_open(later, None) == datetime(2026, 3, 13, 20, 0, tzinfo=UTC)


def test_an_action_outside_its_triggers_send_window_is_deferred_on_every_channel() -> None:
    for channel in ("email", "inapp"):
        c = replace(candidate(channel=channel, at=ny(2026, 3, 7, 12)), window=WEEKDAYS_9_TO_6)
        verdict = judge(c, prefs=NY_USER)
        assert (verdict.status, verdict.reason) == ("deferred", "send_window")
        assert verdict.defer_until == ny(2026, 3, 9, 9)
        assert judge(c, prefs=NY_USER, now=ny(2026, 3, 9, 9)).sends


def test_a_send_window_without_days_is_refused() -> None:
    with pytest.raises(ValueError, match="never open"):
        SendWindow.model_validate({"days": []})
