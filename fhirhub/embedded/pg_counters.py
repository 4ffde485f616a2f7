"""Per-type resource counts the embedded PostgreSQL maintains itself (a trigger).

FerretDB 1.24 counts by fetching and converting every matching document (`count` of 49k
Observations ran past 20 s), and its collStats takes seconds on a large table. So the
embedded set-up keeps the number of live resources per type in a collection of its own,
`type_counts`, updated by a trigger on the `resources` table in the same PostgreSQL
transaction as the write: a count is exact at every moment, costs no extra round trip,
and reading it is one small query. Rows are spread over a few shards per type (by backend)
so that concurrent writers of one type rarely wait for each other's row lock.

The counter rows are written in FerretDB 1.24's document format (`$s` holds the field
types), so FerretDB reads them as ordinary documents. MongoDB needs none of this: it counts
with its own index (storage/type_counts.py).
"""

from __future__ import annotations

from fhirhub.embedded.pg_tables import collection_tables
from fhirhub.embedded.postgres import psql

COUNTS = "type_counts"
INSTALLED = "~installed"  # marker document: the trigger exists and the rows were seeded
SHARDS = 8
SCHEMA = (
    '{"p": {"_id": {"t": "string"}, "t": {"t": "string"}, "n": {"t": "long"}}, '
    '"$k": ["_id", "t", "n"]}'
)

_FUNCTION = """
create or replace function "{schema}".fhirhub_count_{suffix}() returns trigger
language plpgsql as $fn$
declare
  old_live int := 0;
  new_live int := 0;
  kind text;
begin
  if tg_op <> 'INSERT' and (old._jsonb ? 't') and old._jsonb -> 'del' = 'false'::jsonb then
    old_live := 1;
    kind := old._jsonb ->> 't';
  end if;
  if tg_op <> 'DELETE' and (new._jsonb ? 't') and new._jsonb -> 'del' = 'false'::jsonb then
    new_live := 1;
    kind := new._jsonb ->> 't';
  end if;
  if new_live = old_live then
    return null;
  end if;
  insert into "{schema}"."{counts}" (_jsonb) values (jsonb_build_object(
      '_id', kind || '~' || (pg_backend_pid() % {shards})::text,
      't', kind, 'n', new_live - old_live, '$s', '{schema_json}'::jsonb))
    on conflict ((_jsonb -> '_id')) do update
    set _jsonb = jsonb_set("{counts}"._jsonb, '{{n}}',
        to_jsonb(("{counts}"._jsonb ->> 'n')::bigint + (new_live - old_live)));
  return null;
end
$fn$;
"""


def ensure_counters(port: int, db_name: str, create_collection: object) -> bool:
    """Install the trigger and seed the counts once (idempotent). `create_collection`:
    called to make FerretDB create the counts collection (its table) if missing. Returns
    whether counts are available."""
    tables = collection_tables(port, db_name)
    if COUNTS not in tables and callable(create_collection):
        create_collection()
        tables = collection_tables(port, db_name)
    resources, counts = tables.get("resources"), tables.get(COUNTS)
    if not resources or not counts:
        return False
    suffix = resources.rsplit("_", 1)[-1]
    installed = psql(
        port,
        f"select count(*) from pg_trigger where tgname = 'fhirhub_count_{suffix}_ins'",
    ).strip()
    if installed == "1":
        return True
    marker = (
        f"jsonb_build_object('_id', '{INSTALLED}', 't', '{INSTALLED}', 'n', 1, "
        f"'$s', '{SCHEMA}'::jsonb)"
    )
    function = _FUNCTION.format(
        schema=db_name, suffix=suffix, counts=counts, shards=SHARDS, schema_json=SCHEMA
    )
    target = f'"{db_name}"."{resources}"'
    statements = [
        # One transaction: no write can slip between the seeding count and the trigger.
        "begin",
        f"lock table {target} in share row exclusive mode",
        function,
        f'delete from "{db_name}"."{counts}"',
        f'insert into "{db_name}"."{counts}" (_jsonb) '
        f"select jsonb_build_object('_id', t || '~0', 't', t, 'n', n, '$s', '{SCHEMA}'::jsonb) "
        f"from (select _jsonb ->> 't' as t, count(*) as n from {target} "
        f"where (_jsonb ? 't') and _jsonb -> 'del' = 'false'::jsonb group by 1) as live",
        f'insert into "{db_name}"."{counts}" (_jsonb) values ({marker})',
    ]
    for event, name in (("insert", "ins"), ("update", "upd"), ("delete", "del")):
        statements.append(
            f"create trigger fhirhub_count_{suffix}_{name} after {event} on {target} "
            f'for each row execute function "{db_name}".fhirhub_count_{suffix}()'
        )
    statements.append("commit")
    psql(port, ";\n".join(statements))
    return True
