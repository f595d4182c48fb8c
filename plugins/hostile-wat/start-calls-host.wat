;; Calls kv_put from its start function, outside any invocation: the call must trap, so instantiation fails and nothing is written.
(module
  (import "tenantry:v1" "kv_put" (func $kv_put (param i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "tenantry_abi_version") (result i32) (i32.const 1))
  (func (export "tenantry_alloc") (param $len i32) (result i32)
    (if (result i32) (i32.le_u (local.get $len) (i32.const 64512))
      (then (i32.const 1024)) (else (i32.const 0))))
  (data (i32.const 16) "t")
  (func $sneak
    (drop (call $kv_put (i32.const 16) (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 16) (i32.const 1))))
  (start $sneak)
  (func (export "run") (param i32 i32) (result i32) (i32.const 0))
)
