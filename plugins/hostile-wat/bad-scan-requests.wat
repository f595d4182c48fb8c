;; Sends malformed kv_scan requests from valid memory. "truncated", "unknown_selector", "unknown_bound" and "trailing_byte" must trap (bad encoding). "bad_cursor" and "empty_table" are well-formed but invalid: they must not trap, and output kv_scan's return value as 8 little-endian bytes (-9 InvalidCursor, -2 InvalidTableName).
(module
  (import "tenantry:v1" "kv_scan" (func $kv_scan (param i32 i32) (result i64)))
  (import "tenantry:v1" "output" (func $output (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "tenantry_abi_version") (result i32) (i32.const 1))
  (func (export "tenantry_alloc") (param $len i32) (result i32)
    (if (result i32) (i32.le_u (local.get $len) (i32.const 64512))
      (then (i32.const 1024)) (else (i32.const 0))))

  ;; selector 0, limit 0, table "t", then the prefix length is missing (10 bytes).
  (data (i32.const 100) "\00\00\00\00\00\01\00\00\00t")
  ;; selector 7 (unknown), limit 0, table "t", 4 more bytes (14 bytes).
  (data (i32.const 200) "\07\00\00\00\00\01\00\00\00t\00\00\00\00")
  ;; selector 1 (range), limit 0, table "t", start bound tag 9 (unknown), end unbounded, no cursor (16 bytes).
  (data (i32.const 300) "\01\00\00\00\00\01\00\00\00t\09\00\00\00\00\00")
  ;; a valid prefix request (table "t", empty prefix, no cursor) plus one extra byte (19 bytes).
  (data (i32.const 400) "\00\00\00\00\00\01\00\00\00t\00\00\00\00\00\00\00\00\ff")
  ;; a valid prefix request whose 2-byte cursor has version 9 (20 bytes).
  (data (i32.const 500) "\00\00\00\00\00\01\00\00\00t\00\00\00\00\02\00\00\00\09A")
  ;; a valid prefix request with an empty table name (17 bytes).
  (data (i32.const 600) "\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00")

  (func (export "truncated") (param i32 i32) (result i32)
    (drop (call $kv_scan (i32.const 100) (i32.const 10)))
    (i32.const 0))
  (func (export "unknown_selector") (param i32 i32) (result i32)
    (drop (call $kv_scan (i32.const 200) (i32.const 14)))
    (i32.const 0))
  (func (export "unknown_bound") (param i32 i32) (result i32)
    (drop (call $kv_scan (i32.const 300) (i32.const 16)))
    (i32.const 0))
  (func (export "trailing_byte") (param i32 i32) (result i32)
    (drop (call $kv_scan (i32.const 400) (i32.const 19)))
    (i32.const 0))
  (func $report (param $result i64) (result i32)
    (i64.store (i32.const 2048) (local.get $result))
    (drop (call $output (i32.const 2048) (i32.const 8)))
    (i32.const 0))
  (func (export "bad_cursor") (param i32 i32) (result i32)
    (call $report (call $kv_scan (i32.const 500) (i32.const 20))))
  (func (export "empty_table") (param i32 i32) (result i32)
    (call $report (call $kv_scan (i32.const 600) (i32.const 17))))
)
