;; Has a start function that loops forever: instantiation itself must be stopped by the fuel or epoch deadline.
(module
  (memory (export "memory") 1)
  (func (export "tenantry_abi_version") (result i32) (i32.const 1))
  (func (export "tenantry_alloc") (param $len i32) (result i32)
    (if (result i32) (i32.le_u (local.get $len) (i32.const 64512))
      (then (i32.const 1024)) (else (i32.const 0))))
  (func $forever
    (loop $again (br $again)))
  (start $forever)
  (func (export "run") (param i32 i32) (result i32) (i32.const 0))
)
