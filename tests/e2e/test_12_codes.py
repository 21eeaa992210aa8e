"""12. Email and SMS codes end to end: a real SMTP sink (aiosmtpd) and a real HTTPS webhook
receive what pwresetd sends. A code works once, only in its own flow, only until it expires,
and only until the next challenge; destinations come from the directory and show as masked
hints; codes per destination are limited per hour; recovery codes work once."""
import re
import time

import pytest

from conftest import (MOBILE, Api, World, assert_error, email_of, enroll, find_leaks, ldap_binds, start_reset,
                      wrong_code)
from nodes import code_world, mail_factors, start_node

CODES_PER_HOUR = 6  # alice's address gets 6 codes in this module, bob's 1 before the flood test
SMS_TTL_S = 8  # short, so the expiry test waits only a few seconds
NEW_PASSWORD = "Copper-Kettle-Horizon-57"
AFTER_RECOVERY_PASSWORD = "Velvet-Compass-Orchard-93"


@pytest.fixture(scope="module")
def codes_api(binary, workdir, world, pki, keys, lab, smtp_sink, sms_webhook):
    sms = f"""
enabled: true
webhook_url: "{sms_webhook.url}"
bearer_token_file: {sms_webhook.token_file}
ca_file: {sms_webhook.ca_file}
code_ttl_s: {SMS_TTL_S}
timeout_ms: 2000
retries: 1
country_code: "+46"
"""
    with code_world(world):
        d, api = start_node(binary, workdir / "node-codes", world, pki, keys, lab,
                            factors=mail_factors(codes_per_hour=CODES_PER_HOUR, sms=sms), extra=smtp_sink.mail_block(),
                            verify_failures=10)
        try:
            yield api
        finally:
            code = d.stop()
            assert code == 0, f"pwresetd exited with {code}; stderr:\n{d.stderr()[-3000:]}"
            leaks = find_leaks(world, [d.stderr_path, d.audit_path])
            assert not leaks, "secrets in the log/audit:\n" + "\n".join(leaks)


def challenge(api: Api, rid: str, method: str, **kw):
    r = api.call("POST", f"/v1/resets/{rid}/challenge", {"method": method}, **kw)
    assert r.status == 202, r
    return r


def verify(api: Api, rid: str, method: str, code: str):
    return api.call("POST", f"/v1/resets/{rid}/verify", {"method": method, "code": code})


def test_start_lists_methods_with_masked_hints(codes_api: Api):
    r = start_reset(codes_api, "alice")
    assert r.status == 201, r
    assert r.json["methods"] == [{"method": "totp"},
                                 {"method": "email", "hint": "a***@e***.test"},
                                 {"method": "sms", "hint": "+46 ** *** ** 67"}], r
    assert r.json["required_methods"] == 1
    # an unknown user: the same shape, hints shaped like real ones, stable per name
    u1, u2 = start_reset(codes_api, "nobody-at-all"), start_reset(codes_api, "nobody-at-all")
    assert [m["method"] for m in u1.json["methods"]] == ["totp", "email", "sms"], u1
    assert u1.json["methods"] == u2.json["methods"], (u1, u2)
    assert re.fullmatch(r"n\*\*\*@e\*\*\*\.test", u1.json["methods"][1]["hint"]), u1
    assert re.fullmatch(r"\+46 \*\* \*\*\* \*\* \d\d", u1.json["methods"][2]["hint"]), u1


def test_email_code_arrives_and_works_once(codes_api: Api, world: World, smtp_sink):
    rid = start_reset(codes_api, "alice").json["reset_id"]
    mark = smtp_sink.count()
    r = challenge(codes_api, rid, "email")
    assert r.json == {"method": "email", "expires_in": 600}, r
    mail = smtp_sink.wait_message(after=mark, to=email_of("alice"))
    assert mail["To"] == "alice@example.test", mail
    assert mail["From"] == smtp_sink.sender, mail
    assert mail["Subject"] == "Your password reset code", mail
    body = mail.get_content()
    assert "http" not in body.lower(), "a code mail must carry no link"
    code = smtp_sink.code_in(world, body)
    assert len(code) == 6

    ok = verify(codes_api, rid, "email", code)
    assert ok.status == 200 and ok.json == {"verified_methods": ["email"], "remaining_methods": 0}, ok
    assert_error(verify(codes_api, rid, "email", code), 401, "invalid_code")


def test_email_in_swedish(codes_api: Api, world: World, smtp_sink):
    rid = start_reset(codes_api, "alice").json["reset_id"]
    mark = smtp_sink.count()
    challenge(codes_api, rid, "email", headers={"Accept-Language": "sv-SE, en;q=0.5"})
    mail = smtp_sink.wait_message(after=mark, to=email_of("alice"))
    assert mail["Subject"] == "Din kod för återställning av lösenord", mail
    assert "Koden gäller i 10 minuter" in mail.get_content()
    smtp_sink.code_in(world, mail.get_content())


def test_second_challenge_kills_the_first_code(codes_api: Api, world: World, smtp_sink):
    rid = start_reset(codes_api, "alice").json["reset_id"]
    mark = smtp_sink.count()
    challenge(codes_api, rid, "email")
    first = smtp_sink.wait_code(world, after=mark, to=email_of("alice"))
    mark = smtp_sink.count()
    challenge(codes_api, rid, "email")
    second = smtp_sink.wait_code(world, after=mark, to=email_of("alice"))
    if first != second:  # 1 in 10^6 they are equal
        assert_error(verify(codes_api, rid, "email", first), 401, "invalid_code")
    assert verify(codes_api, rid, "email", second).status == 200


def test_code_from_alices_flow_fails_in_bobs(codes_api: Api, world: World, smtp_sink):
    alice = start_reset(codes_api, "alice").json["reset_id"]
    bob = start_reset(codes_api, "bob").json["reset_id"]
    mark = smtp_sink.count()
    challenge(codes_api, alice, "email")
    code = smtp_sink.wait_code(world, after=mark, to=email_of("alice"))
    mark = smtp_sink.count()
    challenge(codes_api, bob, "email")
    smtp_sink.wait_code(world, after=mark, to=email_of("bob"))
    assert_error(verify(codes_api, bob, "email", code), 401, "invalid_code")
    # nor in another flow of alice's own
    other = start_reset(codes_api, "alice").json["reset_id"]
    assert_error(verify(codes_api, other, "email", code), 401, "invalid_code")
    assert verify(codes_api, alice, "email", code).status == 200


def test_sms_code_through_the_webhook(codes_api: Api, world: World, sms_webhook):
    rid = start_reset(codes_api, "alice").json["reset_id"]
    mark = sms_webhook.count()
    r = challenge(codes_api, rid, "sms")
    assert r.json == {"method": "sms", "expires_in": SMS_TTL_S}, r
    to, text, authorized = sms_webhook.wait_message(after=mark, to=MOBILE["alice"])
    assert to == MOBILE["alice"] == "+46701234567" and authorized, (to, authorized)
    code = sms_webhook.code_in(world, text)
    assert verify(codes_api, rid, "sms", code).status == 200
    assert_error(verify(codes_api, rid, "sms", code), 401, "invalid_code")
    # the email code of the same flow is another code
    assert_error(verify(codes_api, rid, "email", code), 401, "invalid_code")


def test_expired_sms_code_fails(codes_api: Api, world: World, sms_webhook):
    rid = start_reset(codes_api, "alice").json["reset_id"]
    mark = sms_webhook.count()
    challenge(codes_api, rid, "sms")
    _, text, _ = sms_webhook.wait_message(after=mark, to=MOBILE["alice"])
    code = sms_webhook.code_in(world, text)
    time.sleep(SMS_TTL_S + 1.5)
    assert_error(verify(codes_api, rid, "sms", code), 401, "invalid_code")


def test_no_destination_and_unknown_users_get_the_same_202(codes_api: Api, world: World, sms_webhook,
                                                           smtp_sink):
    bob = start_reset(codes_api, "bob").json["reset_id"]  # bob has no mobile number
    unknown = start_reset(codes_api, "nobody-at-all").json["reset_id"]
    sms_mark, mail_mark = sms_webhook.count(), smtp_sink.count()
    a = challenge(codes_api, bob, "sms")
    b = challenge(codes_api, unknown, "sms")
    c = challenge(codes_api, unknown, "email")
    assert a.json == b.json == {"method": "sms", "expires_in": SMS_TTL_S}, (a, b)
    assert c.json == {"method": "email", "expires_in": 600}, c
    assert_error(verify(codes_api, unknown, "email", wrong_code(world)), 401, "invalid_code")
    time.sleep(1.0)  # what would have been sent has had time to arrive
    # nothing to anyone but alice (a late code of an earlier test may still come to her)
    late = {email_of("alice"), MOBILE["alice"]}
    sent = sms_webhook.recipients_since(sms_mark) + smtp_sink.recipients_since(mail_mark)
    assert set(sent) <= late, f"sent to nobody? {sent}"
    assert_error(codes_api.call("POST", f"/v1/resets/{bob}/challenge", {"method": "totp"}), 400, "bad_request")
    assert_error(codes_api.call("POST", f"/v1/resets/{bob}/challenge", {"method": "pigeon"}), 400, "bad_request")


def test_flood_limit_per_destination(codes_api: Api, world: World, smtp_sink):
    # bob's address: one code so far in this module
    flows = [start_reset(codes_api, "bob").json["reset_id"] for _ in range(2)]
    statuses = []
    for i in range(CODES_PER_HOUR + 1):
        r = codes_api.call("POST", f"/v1/resets/{flows[i % 2]}/challenge", {"method": "email"})
        statuses.append(r.status)
        if r.status == 429:
            assert_error(r, 429, "rate_limited")
            assert 0 < r.json["retry_after"] <= 3600 and r.headers.get("retry-after"), r
    assert statuses == [202] * (CODES_PER_HOUR - 1) + [429, 429], statuses


def test_recovery_code_works_once_and_completes_a_reset(codes_api: Api, world: World, lab):
    enroll(codes_api, world, "alice")
    codes = world.recovery["alice"]
    # with an authenticator, email alone is not enough (totp_when_enrolled)
    rid = start_reset(codes_api, "alice").json["reset_id"]
    v = verify(codes_api, rid, "recovery_code", codes[0].upper())
    assert v.status == 200 and v.json == {"verified_methods": ["recovery_code"], "remaining_methods": 0}, v
    other = start_reset(codes_api, "alice").json["reset_id"]
    assert_error(verify(codes_api, other, "recovery_code", codes[0]), 401, "invalid_code")

    c = codes_api.call("POST", f"/v1/resets/{rid}/complete", {"new_password": world.secret(NEW_PASSWORD)})
    assert c.status == 200 and c.json["status"] == "password_reset", c
    world.passwords["alice"] = NEW_PASSWORD
    assert ldap_binds(lab, "alice", NEW_PASSWORD)
    # a completed reset closes the user's other flows
    assert_error(verify(codes_api, other, "recovery_code", codes[1]), 410, "reset_expired")


def test_email_alone_is_not_enough_with_an_authenticator(codes_api: Api, world: World, smtp_sink):
    rid = start_reset(codes_api, "alice").json["reset_id"]
    mark = smtp_sink.count()
    challenge(codes_api, rid, "email")
    code = smtp_sink.wait_code(world, after=mark, to=email_of("alice"))
    v = verify(codes_api, rid, "email", code)
    assert v.status == 200 and v.json["remaining_methods"] == 1, v
    c = codes_api.call("POST", f"/v1/resets/{rid}/complete", {"new_password": world.secret(AFTER_RECOVERY_PASSWORD)})
    assert_error(c, 403, "verification_required")
    assert c.json["remaining_methods"] == 1, c
    v2 = verify(codes_api, rid, "recovery_code", world.recovery["alice"][2])
    assert v2.status == 200 and v2.json["remaining_methods"] == 0, v2
