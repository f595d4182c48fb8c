;; kv_get_into by hand (sdk/ABI.md §6.10): each export reads key "k" (value "hello", stored by `setup`) or another key into a destination at 2056 prefilled with 0xAA, and outputs the i64 return value (8 bytes, little-endian) followed by 16 bytes from 2056.
(module
  (import "tenantry:v1" "kv_put" (func $kv_put (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "tenantry:v1" "kv_get_into" (func $kv_get_into (param i32 i32 i32 i32 i32 i32) (result i64)))
  (import "tenantry:v1" "result_read" (func $result_read (param i32 i32) (result i32)))
  (import "tenantry:v1" "output" (func $output (param i32 i32) (result i32)))

  (memory (export "memory") 1)
  (data (i32.const 16) "t")
  (data (i32.const 32) "k")
  (data (i32.const 40) "none")
  (data (i32.const 48) "hello")
  (data (i32.const 64) "empty")
  (data (i32.const 80) "bad name")
  (func (export "tenantry_abi_version") (result i32) (i32.const 1))
  (func (export "tenantry_alloc") (param $len i32) (result i32)
    (if (result i32) (i32.le_u (local.get $len) (i32.const 1024))
      (then (i32.const 4096)) (else (i32.const 0))))

  ;; Stores the return value at 2048, then outputs 2048..2072: the value and the destination.
  (func $report (param $code i64) (result i32)
    (i64.store (i32.const 2048) (local.get $code))
    (drop (call $output (i32.const 2048) (i32.const 24)))
    (i32.const 0))
  (func $prefill
    (memory.fill (i32.const 2056) (i32.const 0xAA) (i32.const 16)))

  ;; t/k = "hello", t/empty = "".
  (func (export "setup") (param i32 i32) (result i32)
    (drop (call $kv_put (i32.const 16) (i32.const 1) (i32.const 32) (i32.const 1) (i32.const 48) (i32.const 5)))
    (drop (call $kv_put (i32.const 16) (i32.const 1) (i32.const 64) (i32.const 5) (i32.const 0) (i32.const 0)))
    (i32.const 0))
  ;; An 8-byte destination: the value is copied, the rest is untouched.
  (func (export "fits") (param i32 i32) (result i32)
    (call $prefill)
    (call $report (call $kv_get_into (i32.const 16) (i32.const 1) (i32.const 32) (i32.const 1) (i32.const 2056) (i32.const 8))))
  ;; A destination of exactly the value's length.
  (func (export "exact") (param i32 i32) (result i32)
    (call $prefill)
    (call $report (call $kv_get_into (i32.const 16) (i32.const 1) (i32.const 32) (i32.const 1) (i32.const 2056) (i32.const 5))))
  ;; A 4-byte destination: nothing is written there; result_read then copies the value to 2064.
  (func (export "too_small") (param i32 i32) (result i32)
    (local $code i64)
    (call $prefill)
    (local.set $code (call $kv_get_into (i32.const 16) (i32.const 1) (i32.const 32) (i32.const 1) (i32.const 2056) (i32.const 4)))
    (drop (call $result_read (i32.const 2064) (i32.const 8)))
    (call $report (local.get $code)))
  ;; Capacity 0 at the very end of memory: a valid empty range; only the length comes back.
  (func (export "zero_capacity") (param i32 i32) (result i32)
    (call $prefill)
    (call $report (call $kv_get_into (i32.const 16) (i32.const 1) (i32.const 32) (i32.const 1) (i32.const 65536) (i32.const 0))))
  ;; An empty value fits a destination of capacity 0.
  (func (export "empty_value") (param i32 i32) (result i32)
    (call $prefill)
    (call $report (call $kv_get_into (i32.const 16) (i32.const 1) (i32.const 64) (i32.const 5) (i32.const 2056) (i32.const 0))))
  ;; A missing key: -1 (NotFound), nothing written.
  (func (export "not_found") (param i32 i32) (result i32)
    (call $prefill)
    (call $report (call $kv_get_into (i32.const 16) (i32.const 1) (i32.const 40) (i32.const 4) (i32.const 2056) (i32.const 8))))
  ;; A found value, then a missing key: the miss empties the result buffer (ABI §6.1), so
  ;; result_read then copies nothing; its count is reported.
  (func (export "miss_empties_result") (param i32 i32) (result i32)
    (call $prefill)
    (drop (call $kv_get_into (i32.const 16) (i32.const 1) (i32.const 32) (i32.const 1) (i32.const 2056) (i32.const 0)))
    (drop (call $kv_get_into (i32.const 16) (i32.const 1) (i32.const 40) (i32.const 4) (i32.const 2056) (i32.const 0)))
    (call $report (i64.extend_i32_u (call $result_read (i32.const 2056) (i32.const 8)))))
  ;; A table name with a space: -2 (InvalidTableName), nothing written.
  (func (export "bad_table") (param i32 i32) (result i32)
    (call $prefill)
    (call $report (call $kv_get_into (i32.const 80) (i32.const 8) (i32.const 32) (i32.const 1) (i32.const 2056) (i32.const 8))))
  ;; A 5000-byte key: -3 (KeyTooLarge), nothing written.
  (func (export "key_too_large") (param i32 i32) (result i32)
    (call $prefill)
    (call $report (call $kv_get_into (i32.const 16) (i32.const 1) (i32.const 8192) (i32.const 5000) (i32.const 2056) (i32.const 8))))
)
