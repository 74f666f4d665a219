-- Registry changes announced to the monitor at commit (LISTEN fleet_registry), so it follows a device's removal
-- or re-installation at once instead of at its next periodic re-read, and never judges a device's messages
-- against a car it has left. A trigger rather than a NOTIFY in the back office's service: every writer of
-- device_installs and vehicles (API, CLI, seeding, another domain's SQL) is covered.
-- Payloads: {"device_id": ..., "vehicle_id": ...} for an install row, {"vehicle_id": ...} for a vehicle whose
-- status or class changed. The listener re-reads what it was told about, so a payload is only a hint.
CREATE FUNCTION fleet_registry_notify_install() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM pg_notify('fleet_registry',
                          json_build_object('device_id', OLD.device_id, 'vehicle_id', OLD.vehicle_id)::text);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM pg_notify('fleet_registry',
                          json_build_object('device_id', NEW.device_id, 'vehicle_id', NEW.vehicle_id)::text);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER device_installs_notify AFTER INSERT OR UPDATE OR DELETE ON device_installs
    FOR EACH ROW EXECUTE FUNCTION fleet_registry_notify_install();

CREATE FUNCTION fleet_registry_notify_vehicle() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.status, NEW.class) IS DISTINCT FROM (OLD.status, OLD.class) THEN
        PERFORM pg_notify('fleet_registry', json_build_object('vehicle_id', NEW.id)::text);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER vehicles_registry_notify AFTER UPDATE OF status, class ON vehicles
    FOR EACH ROW EXECUTE FUNCTION fleet_registry_notify_vehicle();
