#!/usr/bin/env python3
"""The peer of idm-sync's inbound reconciliation: what a team without idm-sync would write.

One pass copies every Salesforce User into PostgreSQL: simple-salesforce pages the users out,
psycopg upserts the managed users (one table, a jsonb body with the fields idm-sync's
conf/sync.json mapping produces) and the links (Salesforce id <-> managed id), two multi-row
statements per 2,000-record page, one transaction per page. A second pass on the same database
is the "unchanged re-recon": its upserts rewrite no row whose body did not change.

    peer_recon.py BASE_URL POSTGRES_URL

BASE_URL is the emulator's (its token endpoint is BASE_URL/services/oauth2/token); the client
id, secret and refresh token default to the emulator's and can be given as flags or through
SF_CLIENT_ID, SF_CLIENT_SECRET and SF_REFRESH_TOKEN. The last line printed is
`PEER_RESULT {json}`: seconds (token call to last commit), users read, users written, pages.
benches/recon.rs runs this script before and after idm-sync's own recons.
"""

import argparse
import itertools
import json
import os
import sys
import time
from urllib.parse import urlsplit

import psycopg
import requests
from simple_salesforce import Salesforce

SOQL = (
    "SELECT Id, Username, Email, FirstName, LastName, ProfileId, IsActive, LastModifiedDate "
    "FROM User"
)
# Salesforce's (and the emulator's) query page.
PAGE = 2000

SCHEMA = """
CREATE TABLE IF NOT EXISTS managed_users (
    id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_name  text        NOT NULL UNIQUE,
    body       jsonb       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS salesforce_links (
    salesforce_id text PRIMARY KEY,
    managed_id    uuid NOT NULL REFERENCES managed_users (id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS salesforce_links_managed ON salesforce_links (managed_id);
"""

# Correlation by userName (the mapping's correlationQuery); an unchanged body is not rewritten.
UPSERT_USERS = """
INSERT INTO managed_users (user_name, body)
SELECT u.user_name, u.body::jsonb
  FROM unnest(%s::text[], %s::text[]) AS u(user_name, body)
ON CONFLICT (user_name) DO UPDATE
   SET body = excluded.body, updated_at = now()
 WHERE managed_users.body IS DISTINCT FROM excluded.body
"""

UPSERT_LINKS = """
INSERT INTO salesforce_links (salesforce_id, managed_id)
SELECT l.salesforce_id, m.id
  FROM unnest(%s::text[], %s::text[]) AS l(salesforce_id, user_name)
  JOIN managed_users m ON m.user_name = l.user_name
ON CONFLICT (salesforce_id) DO UPDATE
   SET managed_id = excluded.managed_id
 WHERE salesforce_links.managed_id IS DISTINCT FROM excluded.managed_id
"""


class InstanceSession(requests.Session):
    """simple-salesforce writes every URL as https://<instance>/...; the emulator serves plain
    HTTP on loopback, so requests go out with the scheme of the token answer's instance_url
    (https for a real org, where this changes nothing)."""

    def __init__(self, scheme):
        super().__init__()
        self.scheme = scheme

    def request(self, method, url, *args, **kwargs):
        if self.scheme == "http" and url.startswith("https://"):
            url = "http://" + url[len("https://") :]
        return super().request(method, url, *args, **kwargs)


def managed_body(record):
    """The managed user conf/sync.json's systemSalesforceUser_managedUser mapping makes."""
    return {
        "userName": record["Username"],
        "mail": record["Email"],
        "givenName": record["FirstName"],
        "sn": record["LastName"],
        "profileId": record["ProfileId"],
        "accountStatus": "inactive" if record["IsActive"] is False else "active",
    }


def valid_source(record):
    """The mapping's validSource: the Automated Process user is not synced."""
    return not (record["Email"] or "").startswith("autoproc")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base_url", help="the emulator's base URL, e.g. http://127.0.0.1:8090")
    parser.add_argument("postgres_url", help="the peer's own database")
    parser.add_argument(
        "--client-id", default=os.environ.get("SF_CLIENT_ID", "idm-sync-emulator-key")
    )
    parser.add_argument(
        "--client-secret", default=os.environ.get("SF_CLIENT_SECRET", "idm-sync-emulator-secret")
    )
    parser.add_argument(
        "--refresh-token",
        default=os.environ.get("SF_REFRESH_TOKEN", "idm-sync-emulator-refresh-token"),
    )
    args = parser.parse_args()

    started = time.perf_counter()
    answer = requests.post(
        args.base_url.rstrip("/") + "/services/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "client_id": args.client_id,
            "client_secret": args.client_secret,
            "refresh_token": args.refresh_token,
        },
        timeout=60,
    )
    answer.raise_for_status()
    token = answer.json()
    instance_url = token["instance_url"]
    sf = Salesforce(
        instance_url=instance_url,
        session_id=token["access_token"],
        version="62.0",
        session=InstanceSession(urlsplit(instance_url).scheme),
    )

    read = written = linked = pages = 0
    db_seconds = 0.0
    with psycopg.connect(args.postgres_url, autocommit=True) as conn:
        conn.execute(SCHEMA)
        records = sf.query_all_iter(SOQL)
        while page := list(itertools.islice(records, PAGE)):
            read += len(page)
            valid = [r for r in page if valid_source(r)]
            ids = [r["Id"] for r in valid]
            names = [r["Username"] for r in valid]
            bodies = [json.dumps(managed_body(r)) for r in valid]
            t = time.perf_counter()
            with conn.transaction():
                written += conn.execute(UPSERT_USERS, (names, bodies)).rowcount
                linked += conn.execute(UPSERT_LINKS, (ids, names)).rowcount
            db_seconds += time.perf_counter() - t
            pages += 1
    seconds = time.perf_counter() - started
    result = {
        "seconds": round(seconds, 4),
        "db_seconds": round(db_seconds, 4),
        "users": read,
        "written": written,
        "links_written": linked,
        "pages": pages,
    }
    print("PEER_RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
