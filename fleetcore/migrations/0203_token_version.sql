-- Revocation without clock comparisons: tokens carry the user's token_version ("ver" claim); a password reset,
-- password change or deactivation increments it, so every token issued before stops working at once.
ALTER TABLE staff_users ADD COLUMN token_version integer NOT NULL DEFAULT 0;
