-- Customers' identity document, licence and phone numbers are stored encrypted (fleetcore/crypto.py); exact
-- lookups go through blind indexes beside them. The phone pattern is checked by the API before encryption.
ALTER TABLE customers DROP CONSTRAINT IF EXISTS customers_phone_check;
DROP INDEX IF EXISTS customers_licence;
ALTER TABLE customers
    ADD COLUMN id_document_bidx text,
    ADD COLUMN licence_bidx     text,
    ADD COLUMN phone_bidx       text,
    ADD COLUMN erased_at        timestamptz;
CREATE INDEX customers_id_document_bidx ON customers (id_document_bidx) WHERE id_document_bidx IS NOT NULL;
CREATE INDEX customers_licence_bidx ON customers (licence_bidx) WHERE licence_bidx IS NOT NULL;
CREATE INDEX customers_phone_bidx ON customers (phone_bidx) WHERE phone_bidx IS NOT NULL;
