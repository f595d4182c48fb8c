;; Passes out-of-bounds and overflowing (ptr, len) pairs to every host function, one export per case; memory is 1 page (65536 bytes). Every export must trap without the host reading or writing outside the guest's memory, and without side effects.
(module
  (import "tenantry:v1" "kv_get" (func $kv_get (param i32 i32 i32 i32) (result i64)))
  (import "tenantry:v1" "kv_get_into" (func $kv_get_into (param i32 i32 i32 i32 i32 i32) (result i64)))
  (import "tenantry:v1" "kv_put" (func $kv_put (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "tenantry:v1" "kv_delete" (func $kv_delete (param i32 i32 i32 i32) (result i32)))
  (import "tenantry:v1" "kv_scan" (func $kv_scan (param i32 i32) (result i64)))
  (import "tenantry:v1" "audit_log" (func $audit_log (param i32 i32 i32 i32) (result i32)))
  (import "tenantry:v1" "debug_log" (func $debug_log (param i32 i32) (result i32)))
  (import "tenantry:v1" "output" (func $output (param i32 i32) (result i32)))
  (import "tenantry:v1" "result_read" (func $result_read (param i32 i32) (result i32)))

  (memory (export "memory") 1)
  ;; A valid table name "t" at 16 and key "k" at 32, so only the named argument is bad.
  (data (i32.const 16) "t")
  (data (i32.const 32) "k")
  (func (export "tenantry_abi_version") (result i32) (i32.const 1))
  (func (export "tenantry_alloc") (param $len i32) (result i32)
    (if (result i32) (i32.le_u (local.get $len) (i32.const 64512))
      (then (i32.const 1024)) (else (i32.const 0))))

  ;; Table name straddles the end of memory.
  (func (export "kv_get_table_oob") (param i32 i32) (result i32)
    (drop (call $kv_get (i32.const 65534) (i32.const 4) (i32.const 32) (i32.const 1)))
    (i32.const 0))
  ;; Key pointer + length overflows u32.
  (func (export "kv_get_key_overflow") (param i32 i32) (result i32)
    (drop (call $kv_get (i32.const 16) (i32.const 1) (i32.const 0xFFFFFFF0) (i32.const 32)))
    (i32.const 0))
  ;; Key length of 2 GiB.
  (func (export "kv_get_key_huge") (param i32 i32) (result i32)
    (drop (call $kv_get (i32.const 16) (i32.const 1) (i32.const 0) (i32.const 0x7FFFFFFF)))
    (i32.const 0))
  ;; Destination straddles the end of memory.
  (func (export "kv_get_into_dst_oob") (param i32 i32) (result i32)
    (drop (call $kv_get_into (i32.const 16) (i32.const 1) (i32.const 32) (i32.const 1) (i32.const 65530) (i32.const 100)))
    (i32.const 0))
  ;; Destination pointer u32::MAX, capacity 2: overflows.
  (func (export "kv_get_into_dst_overflow") (param i32 i32) (result i32)
    (drop (call $kv_get_into (i32.const 16) (i32.const 1) (i32.const 32) (i32.const 1) (i32.const -1) (i32.const 2)))
    (i32.const 0))
  ;; Destination of capacity 0 past the end of memory.
  (func (export "kv_get_into_dst_empty_past_end") (param i32 i32) (result i32)
    (drop (call $kv_get_into (i32.const 16) (i32.const 1) (i32.const 32) (i32.const 1) (i32.const 70000) (i32.const 0)))
    (i32.const 0))
  ;; Table name straddles the end of memory, with a valid destination.
  (func (export "kv_get_into_table_oob") (param i32 i32) (result i32)
    (drop (call $kv_get_into (i32.const 65534) (i32.const 4) (i32.const 32) (i32.const 1) (i32.const 1024) (i32.const 8)))
    (i32.const 0))
  ;; Value starts exactly at the end of memory.
  (func (export "kv_put_value_oob") (param i32 i32) (result i32)
    (drop (call $kv_put (i32.const 16) (i32.const 1) (i32.const 32) (i32.const 1) (i32.const 65536) (i32.const 1)))
    (i32.const 0))
  ;; Value pointer u32::MAX, length 2: overflows.
  (func (export "kv_put_value_overflow") (param i32 i32) (result i32)
    (drop (call $kv_put (i32.const 16) (i32.const 1) (i32.const 32) (i32.const 1) (i32.const -1) (i32.const 2)))
    (i32.const 0))
  ;; Key past the end of memory with length 0: an empty range must still start inside memory (or at its end).
  (func (export "kv_delete_empty_key_past_end") (param i32 i32) (result i32)
    (drop (call $kv_delete (i32.const 16) (i32.const 1) (i32.const 70000) (i32.const 0)))
    (i32.const 0))
  ;; Scan request runs past the end of memory.
  (func (export "kv_scan_request_oob") (param i32 i32) (result i32)
    (drop (call $kv_scan (i32.const 65000) (i32.const 1000)))
    (i32.const 0))
  ;; Audit action straddles the end of memory (and has no message).
  (func (export "audit_log_action_oob") (param i32 i32) (result i32)
    (drop (call $audit_log (i32.const 65535) (i32.const 2) (i32.const 0) (i32.const -1)))
    (i32.const 0))
  ;; Audit message straddles the end of memory.
  (func (export "audit_log_message_oob") (param i32 i32) (result i32)
    (drop (call $audit_log (i32.const 16) (i32.const 1) (i32.const 65535) (i32.const 100)))
    (i32.const 0))
  ;; Debug message pointer + length overflows u32.
  (func (export "debug_log_overflow") (param i32 i32) (result i32)
    (drop (call $debug_log (i32.const 0xFFFFFF00) (i32.const 0x200)))
    (i32.const 0))
  ;; Output straddles the end of memory.
  (func (export "output_oob") (param i32 i32) (result i32)
    (drop (call $output (i32.const 60000) (i32.const 10000)))
    (i32.const 0))
  ;; Destination straddles the end of memory (even though the result buffer is empty).
  (func (export "result_read_oob") (param i32 i32) (result i32)
    (drop (call $result_read (i32.const 65530) (i32.const 100)))
    (i32.const 0))
  ;; Destination pointer u32::MAX, length 2: overflows.
  (func (export "result_read_overflow") (param i32 i32) (result i32)
    (drop (call $result_read (i32.const -1) (i32.const 2)))
    (i32.const 0))
)
