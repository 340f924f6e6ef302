"""The file adapter's layout per market connection, and the database's guarantee that a submitted offer never
changes.

Immutability is enforced by triggers, so no write path (a service, the admin, a shell, raw SQL) can bypass it:
- market_offer: once a row has `submitted_at`, an UPDATE may change its `state` only (the market accepting or
  rejecting it, a later version superseding it); any other column changing, or a DELETE, is refused.
- market_offerinterval: no INSERT, UPDATE or DELETE of an interval whose offer has been submitted (checked once
  per statement, over its transition table, so a bulk insert of a day's offers costs one join).
Both raise SQLSTATE 23514 (check_violation) naming the rule, which Django raises as IntegrityError.
TRUNCATE (the test runner's flush) does not fire row triggers.
"""

from django.db import migrations, models

TRIGGERS = """
CREATE FUNCTION market_offer_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.submitted_at IS NOT NULL THEN
        IF TG_OP = 'DELETE' THEN
            RAISE EXCEPTION 'offer % v% was submitted: it is kept as sent', OLD.id, OLD.version
                USING ERRCODE = 'check_violation', CONSTRAINT = 'offer_submitted_immutable';
        END IF;
        IF (to_jsonb(NEW) - 'state') IS DISTINCT FROM (to_jsonb(OLD) - 'state') THEN
            RAISE EXCEPTION 'offer % v% was submitted: only its state may change', OLD.id, OLD.version
                USING ERRCODE = 'check_violation', CONSTRAINT = 'offer_submitted_immutable';
        END IF;
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER market_offer_immutable BEFORE UPDATE OR DELETE ON market_offer
    FOR EACH ROW EXECUTE FUNCTION market_offer_immutable();

CREATE FUNCTION market_offerinterval_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Statement-level with transition tables: one check per bulk write, not one per row. (Nested IFs: a
    -- transition table a trigger does not have must not even be planned.)
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        IF EXISTS (SELECT 1 FROM old_rows r JOIN market_offer o ON o.id = r.offer_id WHERE o.submitted_at IS NOT NULL)
        THEN
            RAISE EXCEPTION 'an interval of a submitted offer was written: its intervals are kept as sent'
                USING ERRCODE = 'check_violation', CONSTRAINT = 'offer_submitted_immutable';
        END IF;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        IF EXISTS (SELECT 1 FROM new_rows r JOIN market_offer o ON o.id = r.offer_id WHERE o.submitted_at IS NOT NULL)
        THEN
            RAISE EXCEPTION 'an interval of a submitted offer was written: its intervals are kept as sent'
                USING ERRCODE = 'check_violation', CONSTRAINT = 'offer_submitted_immutable';
        END IF;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER market_offerinterval_immutable_insert AFTER INSERT ON market_offerinterval
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION market_offerinterval_immutable();
CREATE TRIGGER market_offerinterval_immutable_update AFTER UPDATE ON market_offerinterval
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION market_offerinterval_immutable();
CREATE TRIGGER market_offerinterval_immutable_delete AFTER DELETE ON market_offerinterval
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION market_offerinterval_immutable();
"""

DROP_TRIGGERS = """
DROP TRIGGER IF EXISTS market_offerinterval_immutable_insert ON market_offerinterval;
DROP TRIGGER IF EXISTS market_offerinterval_immutable_update ON market_offerinterval;
DROP TRIGGER IF EXISTS market_offerinterval_immutable_delete ON market_offerinterval;
DROP FUNCTION IF EXISTS market_offerinterval_immutable();
DROP TRIGGER IF EXISTS market_offer_immutable ON market_offer;
DROP FUNCTION IF EXISTS market_offer_immutable();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("market", "0003_award_cursor_and_refusals"),
    ]

    operations = [
        migrations.AddField(
            model_name="marketconnection",
            name="layout",
            field=models.CharField(
                blank=True,
                help_text="File adapter: the layout its files follow, a name in aggregator/market/adapters/layouts/ "
                "(e.g. spp-offer-curve-csv, ercot-ews-offer-xml).",
                max_length=60,
            ),
        ),
        migrations.RunSQL(TRIGGERS, DROP_TRIGGERS),
    ]
