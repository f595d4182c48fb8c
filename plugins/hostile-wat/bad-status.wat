;; Plugin functions that return statuses other than 0 and 1: "seven" returns 7, "negative" returns -1. The host must fail the invocation and roll back.
(module
  (import "tenantry:v1" "kv_put" (func $kv_put (param i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "tenantry_abi_version") (result i32) (i32.const 1))
  (func (export "tenantry_alloc") (param $len i32) (result i32)
    (if (result i32) (i32.le_u (local.get $len) (i32.const 64512))
      (then (i32.const 1024)) (else (i32.const 0))))
  (data (i32.const 16) "t")
  (func (export "seven") (param i32 i32) (result i32)
    (drop (call $kv_put (i32.const 16) (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 16) (i32.const 1)))
    (i32.const 7))
  (func (export "negative") (param i32 i32) (result i32) (i32.const -1))
)
