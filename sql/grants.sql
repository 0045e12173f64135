-- User and grants for the daemon's ClickHouse user, from the seed's setup guide.
-- Applied by `python bootstrap.py --grants` as an admin; not part of the schema.
-- The password is bound by bootstrap as an escaped literal (CREATE USER takes no
-- query parameters); plaintext_password from the seed is replaced by sha256.
CREATE USER IF NOT EXISTS {{ user }} {{ on_cluster }} IDENTIFIED WITH sha256_password BY {{ password }};
GRANT {{ on_cluster }} SELECT ON system.* TO {{ user }};
GRANT {{ on_cluster }} ALL ON {{ db }}.* TO {{ user }};
-- validate_schema.py builds the expected schema in a scratch database beside ours.
GRANT {{ on_cluster }} ALL ON {{ db }}_schema_check.* TO {{ user }};
{% if profile %}
ALTER USER {{ user }} {{ on_cluster }} SETTINGS PROFILE {{ profile }};
{% endif %}
