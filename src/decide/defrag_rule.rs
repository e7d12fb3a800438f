pub const DEFAULT_RULE: &str = "dbQuotaUsage > 0.8 || (dbSizeFree >= 100*1024*1024 && fragmentation >= 0.45)";
