"""The store's schema, one SQL script per version; a store runs the ones newer than its user_version."""

MIGRATIONS: list[str] = [
    # 1: files, jobs, job events, durable bed state
    """
    CREATE TABLE files (
        sha256 TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        original_name TEXT NOT NULL,
        uploaded_at TEXT NOT NULL
    );
    CREATE TABLE jobs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        state TEXT NOT NULL,
        file_sha256 TEXT NOT NULL REFERENCES files(sha256),
        file_name TEXT NOT NULL,
        owner TEXT NOT NULL,
        priority INTEGER NOT NULL DEFAULT 0,
        material TEXT, nozzle REAL, size_x REAL, size_y REAL, size_z REAL,
        req_printer TEXT, req_group TEXT,
        printer TEXT,
        created_at TEXT NOT NULL, started_at TEXT, finished_at TEXT,
        progress REAL, error TEXT,
        attempts INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX jobs_by_state ON jobs(state, priority, created_at);
    CREATE TABLE job_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id INTEGER NOT NULL REFERENCES jobs(id),
        at TEXT NOT NULL,
        state TEXT NOT NULL,
        printer TEXT,
        detail TEXT
    );
    CREATE INDEX job_events_by_job ON job_events(job_id, id);
    CREATE TABLE beds (
        printer TEXT PRIMARY KEY,
        clear INTEGER NOT NULL,
        updated_at TEXT NOT NULL
    );
    """,
    # 2: what the slicer says about each job, for the queue view and accounting
    """
    ALTER TABLE jobs ADD COLUMN filament_g REAL;
    ALTER TABLE jobs ADD COLUMN estimated_s REAL;
    """,
    # 3: where each durable consumer of job events has got to (e.g. the InfluxDB job points)
    """
    CREATE TABLE cursors (
        name TEXT PRIMARY KEY,
        event_id INTEGER NOT NULL
    );
    """,
    # 4: accounting: measured figures per job, each plug's running energy, readings taken of running
    # jobs, the printers' state timeline, material loaded at run time, the passport ledger
    """
    CREATE TABLE job_accounts (
        job_id INTEGER PRIMARY KEY REFERENCES jobs(id),
        energy_kwh REAL, heatup_kwh REAL, printing_kwh REAL, paused_kwh REAL,
        energy_source TEXT,
        gap_start_s REAL, gap_end_s REAL,
        filament_est_g REAL, filament_measured_g REAL,
        material_drift INTEGER NOT NULL DEFAULT 0,
        waste_g REAL, waste_kwh REAL,
        cost REAL, cost_energy REAL, cost_material REAL, cost_machine REAL,
        co2_g REAL,
        accounted_at TEXT NOT NULL
    );
    CREATE TABLE job_attempts (
        job_id INTEGER NOT NULL REFERENCES jobs(id),
        attempt INTEGER NOT NULL,
        energy_kwh REAL, heatup_kwh REAL, printing_kwh REAL, paused_kwh REAL,
        energy_source TEXT,
        gap_start_s REAL, gap_end_s REAL,
        filament_est_g REAL, filament_measured_g REAL,
        material_drift INTEGER NOT NULL DEFAULT 0,
        waste_g REAL, waste_kwh REAL,
        cost REAL, cost_energy REAL, cost_material REAL, cost_machine REAL,
        co2_g REAL,
        accounted_at TEXT NOT NULL,
        PRIMARY KEY (job_id, attempt)
    );
    CREATE TABLE meters (
        sensor TEXT PRIMARY KEY,
        raw_kwh REAL,
        total_kwh REAL NOT NULL,
        at TEXT NOT NULL
    );
    CREATE TABLE job_marks (
        job_id INTEGER NOT NULL REFERENCES jobs(id),
        seq INTEGER NOT NULL,
        at TEXT NOT NULL,
        phase TEXT NOT NULL,
        energy_kwh REAL,
        gap_s REAL,
        weight_g REAL,
        co2_g_per_kwh REAL,
        resolved INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (job_id, seq)
    );
    CREATE TABLE printer_timeline (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        printer TEXT NOT NULL,
        state TEXT NOT NULL,
        since TEXT NOT NULL,
        seen TEXT NOT NULL
    );
    CREATE INDEX printer_timeline_by_printer ON printer_timeline(printer, since);
    CREATE TABLE material_loads (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        printer TEXT NOT NULL,
        materials TEXT NOT NULL,
        at TEXT NOT NULL,
        by TEXT
    );
    CREATE TABLE passports (
        seq INTEGER PRIMARY KEY,
        job_id INTEGER NOT NULL REFERENCES jobs(id),
        attempt INTEGER NOT NULL,
        record TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL,
        UNIQUE (job_id, attempt)
    );
    """,
    # 5: printers taken out of service by an operator: one row per spell, open while ended_at is NULL
    """
    CREATE TABLE maintenance (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        printer TEXT NOT NULL,
        reason TEXT NOT NULL,
        since TEXT NOT NULL,
        by TEXT,
        ended_at TEXT,
        ended_by TEXT
    );
    CREATE INDEX maintenance_open ON maintenance(printer) WHERE ended_at IS NULL;
    """,
    # 6: API tokens and members an admin adds at run time (beside those in farmctl.toml). A token is
    # kept as the sha256 of its secret, never the secret; a revoked one keeps its row (who, when), and its
    # name is free again. A member's password is an scrypt hash with its own salt.
    """
    CREATE TABLE api_tokens (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        secret_sha256 TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL,
        created_by TEXT NOT NULL,
        revoked_at TEXT,
        revoked_by TEXT
    );
    CREATE UNIQUE INDEX api_tokens_active ON api_tokens(name) WHERE revoked_at IS NULL;
    CREATE TABLE members (
        name TEXT PRIMARY KEY,
        quota_g REAL,
        quota_cost REAL,
        password_scrypt TEXT,
        created_at TEXT NOT NULL,
        created_by TEXT NOT NULL,
        updated_at TEXT,
        updated_by TEXT
    );
    """,
]
