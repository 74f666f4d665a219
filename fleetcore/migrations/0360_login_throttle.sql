-- Failed logins per username and per source address, for throttling (owned by backoffice.auth). A key is locked
-- for a while after too many failures inside the window; a successful login clears the username's count.
CREATE TABLE login_throttle (
    key           text PRIMARY KEY,            -- 'user:<username>' or 'ip:<address>'
    failures      integer NOT NULL DEFAULT 0,
    window_start  timestamptz NOT NULL DEFAULT now(),
    locked_until  timestamptz
);
