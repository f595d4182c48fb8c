;; Export "recurse" recurses without bound on the wasm stack (no linear-memory stack): the call must trap with a stack overflow.
(module
  (memory (export "memory") 1)
  (func (export "tenantry_abi_version") (result i32) (i32.const 1))
  (func (export "tenantry_alloc") (param $len i32) (result i32)
    (if (result i32) (i32.le_u (local.get $len) (i32.const 64512))
      (then (i32.const 1024)) (else (i32.const 0))))
  (func $down (param $n i32) (result i32)
    (i32.add (call $down (i32.add (local.get $n) (i32.const 1))) (i32.const 1)))
  (func (export "recurse") (param i32 i32) (result i32)
    (drop (call $down (i32.const 0)))
    (i32.const 0))
)
